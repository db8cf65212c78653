/*
 * NVMe controller (device class "nvme", src/hw/nvme/): what machine
 * assembly calls besides device_create().
 *
 *   device_create(m, "nvme", "nvme0", "path=disk.img,serial=S", ...)
 *       creates the controller with namespace 1 (path= may be left out);
 *   nvme_add_namespace(dev, "second.img", false, err, sizeof(err))
 *       appends namespace 2, 3, ... (before the guest starts).
 *
 * Device options: path=IMG (namespace 1), ro (namespace 1 read-only),
 * serial=S (controller serial number, at most 20 characters; default
 * "AMBER-<id>"), direct (open namespace 1, and those added with
 * nvme_add_namespace, with O_DIRECT).
 *
 * With KVM the controller takes doorbell writes through ioeventfd (I/O
 * queues, while the host uses shadow doorbells) and sends MSI-X through
 * irqfd. For measurements and debugging, the environment variable
 * AMBER_NVME_EVENTFD=0|ioeventfd|irqfd|both (default both) chooses which;
 * what is left out uses MMIO exits and KVM_SIGNAL_MSI.
 * AMBER_NVME_COALESCE=adaptive (default)|off|MICROSECONDS sets how long an
 * I/O vector's interrupt may wait to gather completions (src/hw/nvme/coalesce.c).
 */
#ifndef AMBER_NVME_H
#define AMBER_NVME_H

#include <stdbool.h>
#include <stddef.h>

struct device;

/*
 * Open path (raw image or block device) as the next namespace of an "nvme"
 * device. Refuses sizes that are not a multiple of 512 bytes, naming the
 * file in err. 0 or -errno.
 */
int nvme_add_namespace(struct device *dev, const char *path, bool ro, char *err, size_t errlen);
/* The same, choosing O_DIRECT for this namespace (direct) or not. */
int nvme_add_namespace_opts(struct device *dev, const char *path, bool ro, bool direct,
			    char *err, size_t errlen);

#endif
