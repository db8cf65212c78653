/*
 * Port-I/O and MMIO dispatch. A bus is a sorted array of non-overlapping
 * regions searched by binary search. Registration of an overlapping region
 * fails with -EEXIST naming both regions in the log. Regions may be added and
 * removed while vCPUs run (PCI BAR moves); lookups take a read lock.
 */
#ifndef AMBER_BUS_H
#define AMBER_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_ops {
	/* off is relative to the region base; size is 1, 2, 4 or 8. */
	uint64_t (*read)(void *opaque, uint64_t off, unsigned size);
	void (*write)(void *opaque, uint64_t off, uint64_t val, unsigned size);
};

struct bus_region {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;		/* "pio" or "mmio", for messages */
	struct bus_region *regions;	/* sorted by base */
	size_t n, cap;
	pthread_rwlock_t lock;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);
/* 0, -EEXIST on overlap, -EINVAL on an empty or wrapping range, -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name);
/* 0 or -ENOENT when no region starts at base with this opaque. */
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);
/* Copy of the region containing addr (true) or false. */
bool bus_lookup(struct bus *bus, uint64_t addr, struct bus_region *out);
/*
 * Dispatch one access. Unclaimed reads return all-ones, unclaimed writes are
 * ignored (as on a PC); returns false in that case so callers may log.
 */
bool bus_read(struct bus *bus, uint64_t addr, unsigned size, uint64_t *val);
bool bus_write(struct bus *bus, uint64_t addr, unsigned size, uint64_t val);

#endif
