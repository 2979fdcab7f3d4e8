/* names.h — resource names and the KubeVirt env variable name, derived exactly as NVIDIA's sandbox device
 * plugin does (design §4). Pure: no I/O. */
#ifndef VGP_NAMES_H
#define VGP_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGP_RESOURCE_LEN 256

/* NAME from a pci.ids device name ("AD102GL [L40S]" -> "AD102GL_L40S"); model NULL or empty -> the 4-digit
 * lower-case hex device id. *repaired (may be NULL) is set when leading/trailing characters outside [A-Z0-9]
 * had to be dropped to make a valid Kubernetes name. Returns 0, -1 when out is too small or the result is
 * empty (then the hex id is used instead and 0 is returned; -1 only for a too-small buffer). */
int vgp_name_derive(const char *model, uint16_t device, char *out, size_t outlen, bool *repaired);
/* The name part of a resource is valid: 1..63 chars, [A-Za-z0-9._-], starting and ending alphanumeric. */
bool vgp_name_valid(const char *name);
/* A resource prefix is a valid DNS subdomain ("nvidia.com"). */
bool vgp_prefix_valid(const char *prefix);
/* "nvidia.com/GA102GL_A10" -> "PCI_RESOURCE_NVIDIA_COM_GA102GL_A10". Returns 0 or -1 (too small). */
int vgp_env_name(const char *resource, char *out, size_t outlen);
/* "nvidia.com/AD102GL_L40S" -> "vfio-gpu-AD102GL_L40S.sock" (the name after the last '/'). */
int vgp_socket_name(const char *resource, char *out, size_t outlen);

#endif
