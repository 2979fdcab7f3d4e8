/* names.h — resource names and the KubeVirt env variable name, derived exactly as NVIDIA's sandbox device
 * plugin does (docs/architecture.md §4). Pure: no I/O. */
#ifndef VGP_NAMES_H
#define VGP_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGP_RESOURCE_LEN 256

/* NAME from a pci.ids device name ("AD102GL [L40S]" -> "AD102GL_L40S"): trim; upper-case; '/' and '.' -> '_';
 * each run of whitespace -> '_'; drop every character outside [A-Z0-9_]. Then repair: leading/trailing
 * characters other than [A-Z0-9] are dropped and *repaired (may be NULL) is set. A NULL or empty model, or one
 * of which nothing is left, gives the 4-digit lower-case hex device id ("26b5"). Returns 0, or -1 only when
 * out is too small. The result may still be longer than 63 characters: check it with vgp_name_valid. */
int vgp_name_derive(const char *model, uint16_t device, char *out, size_t outlen, bool *repaired);
/* The name part of a resource is a valid Kubernetes qualified-name part: 1..63 chars of [A-Za-z0-9._-],
 * starting and ending alphanumeric. */
bool vgp_name_valid(const char *name);
/* A resource prefix is a valid DNS subdomain ("nvidia.com": lower-case labels of [a-z0-9-], 1..63 chars each,
 * alphanumeric at both ends, 253 in all) outside kubelet's native "kubernetes.io" namespace. */
bool vgp_prefix_valid(const char *prefix);
/* "nvidia.com/GA102GL_A10" -> "PCI_RESOURCE_NVIDIA_COM_GA102GL_A10" (upper-case, '/' and '.' -> '_', as
 * KubeVirt's ResourceNameToEnvVar). Returns 0 or -1 (too small). */
int vgp_env_name(const char *resource, char *out, size_t outlen);
/* "nvidia.com/AD102GL_L40S" -> "vfio-gpu-AD102GL_L40S.sock" (the name after the last '/'). Returns 0 or -1
 * (too small, or nothing after the '/'). */
int vgp_socket_name(const char *resource, char *out, size_t outlen);
/* The short stable name used when <kubelet-dir>/vfio-gpu-<NAME>.sock would pass the unix socket limit:
 * "vfio-gpu-<16 hex digits of FNV-1a 64 of the whole resource name>.sock" (30 characters). Returns 0 or -1. */
int vgp_socket_name_short(const char *resource, char *out, size_t outlen);

#endif
