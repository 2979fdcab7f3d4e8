/* main.c — placeholder until the command-line front end lands. */
#include <stdio.h>
int main(void) { fputs("vfio-gpu-plugin: not built yet\n", stderr); return 1; }
