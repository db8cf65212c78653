/* Port-I/O and MMIO dispatch: sorted region array, binary search. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amber/bus.h"
#include "amber/log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
	free(bus->regions);
	bus->regions = NULL;
	bus->n = bus->cap = 0;
	pthread_rwlock_destroy(&bus->lock);
}

/* Index of the first region whose end is above addr (candidate container). */
static size_t bus_search(const struct bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_region *r = &bus->regions[mid];

		if (r->base + r->len - 1 < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name)
{
	size_t i;
	int ret = 0;

	if (len == 0 || base + len - 1 < base || !ops)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = bus_search(bus, base);
	if (i < bus->n && bus->regions[i].base <= base + len - 1) {
		log_error(bus->name, "%s [%#llx-%#llx] overlaps %s [%#llx-%#llx]",
			  name ? name : "?", (unsigned long long)base,
			  (unsigned long long)(base + len - 1),
			  bus->regions[i].name ? bus->regions[i].name : "?",
			  (unsigned long long)bus->regions[i].base,
			  (unsigned long long)(bus->regions[i].base + bus->regions[i].len - 1));
		ret = -EEXIST;
		goto out;
	}
	if (bus->n == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_region *r = realloc(bus->regions, cap * sizeof(*r));

		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		bus->regions = r;
		bus->cap = cap;
	}
	memmove(&bus->regions[i + 1], &bus->regions[i], (bus->n - i) * sizeof(bus->regions[0]));
	bus->regions[i] = (struct bus_region){ base, len, ops, opaque, name };
	bus->n++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
	size_t i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	i = bus_search(bus, base);
	if (i < bus->n && bus->regions[i].base == base && bus->regions[i].opaque == opaque) {
		memmove(&bus->regions[i], &bus->regions[i + 1],
			(bus->n - i - 1) * sizeof(bus->regions[0]));
		bus->n--;
		ret = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

static bool bus_find_locked(struct bus *bus, uint64_t addr, struct bus_region *out)
{
	size_t i = bus_search(bus, addr);

	if (i < bus->n && bus->regions[i].base <= addr) {
		*out = bus->regions[i];
		return true;
	}
	return false;
}

bool bus_lookup(struct bus *bus, uint64_t addr, struct bus_region *out)
{
	bool found;

	pthread_rwlock_rdlock(&bus->lock);
	found = bus_find_locked(bus, addr, out);
	pthread_rwlock_unlock(&bus->lock);
	return found;
}

/*
 * The handler runs without the bus lock held, so a device may remap BARs
 * from a register write; the region copy stays valid because devices are
 * only freed after the vCPUs have stopped.
 */
bool bus_read(struct bus *bus, uint64_t addr, unsigned size, uint64_t *val)
{
	struct bus_region r;

	if (!bus_lookup(bus, addr, &r) || !r.ops->read) {
		*val = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
		return false;
	}
	*val = r.ops->read(r.opaque, addr - r.base, size);
	if (size < 8)
		*val &= (1ULL << (size * 8)) - 1;
	return true;
}

bool bus_write(struct bus *bus, uint64_t addr, unsigned size, uint64_t val)
{
	struct bus_region r;

	if (!bus_lookup(bus, addr, &r))
		return false;
	if (r.ops->write)
		r.ops->write(r.opaque, addr - r.base, val, size);
	return true;
}
