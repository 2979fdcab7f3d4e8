/* nfd_features.h — node labels through node-feature-discovery's local feature source: serve writes one feature
 * file in NFD's features.d directory (on the host) with the number of passthrough GPUs and one label per resource;
 * nfd-worker reads it and nfd-master puts the labels on the node. `release` of everything removes it.
 *
 * NFD's rules (source/local and pkg/apis/nfd/validate): every regular, non-hidden file of
 * /etc/kubernetes/node-feature-discovery/features.d is read (at most 64 KiB), one "name=value" per line, lines
 * starting with '#' are comments ("# +" starts a directive); an unprefixed name gets the namespace
 * feature.node.kubernetes.io; a name must be a Kubernetes qualified name, its value a valid label value (at most
 * 63 characters); the namespaces kubernetes.io and *.kubernetes.io are denied except feature.node.kubernetes.io,
 * profile.node.kubernetes.io and their sub-namespaces. The labels written here:
 *
 *   feature.node.kubernetes.io/vfio-gpu=<N>           GPUs this node serves for VMs (all resources)
 *   feature.node.kubernetes.io/vfio-gpu.<NAME>=<n>    per resource, NAME the part after '/' of its name
 *                                                     (nvidia.com/AD102GL_L40S -> vfio-gpu.AD102GL_L40S)
 *
 * GPUs on vfio-pci past the configured count (served, never allocatable) are not counted. A node that serves no
 * GPU has no file, so an `Exists` node affinity selects exactly the nodes with passthrough GPUs. */
#ifndef VGP_NFD_FEATURES_H
#define VGP_NFD_FEATURES_H

#include <stddef.h>

#include "allocate.h"
#include "error.h"

#define VGP_NFD_DEFAULT_DIR "/etc/kubernetes/node-feature-discovery/features.d"
#define VGP_NFD_FILE "vfio-gpu-plugin"
#define VGP_NFD_NS "feature.node.kubernetes.io"
#define VGP_NFD_LABEL "vfio-gpu"

/* Does name=value pass the checks nfd-master applies to a feature label (qualified name, allowed namespace, label
 * value)? Returns 0, or -1 with why (when not NULL) saying what is wrong. Pure. */
int vgp_nfd_label_check(const char *name, const char *value, char *why, size_t whylen);

/* The feature file's text for the served resources (malloc'ed). A resource whose label would be invalid or would
 * repeat another's is left out with a warning (log). "" (an empty string) when no GPU is served. NULL when out of
 * memory. Pure apart from the warning. */
char *vgp_nfd_features_text(const struct vgp_served_resource *res, size_t n);

/* Write the text into <dir>/vfio-gpu-plugin atomically (a hidden temporary file, which NFD skips, renamed over
 * it); an empty text removes the file instead. */
int vgp_nfd_write(const char *dir, const struct vgp_served_resource *res, size_t n, vgp_error_t *err);
/* Remove <dir>/vfio-gpu-plugin (absent is fine). */
int vgp_nfd_remove(const char *dir, vgp_error_t *err);

#endif
