/* Guest physical memory slots and checked access. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "amber/mem.h"

static const struct gmem_slot *gmem_slot_of(const struct guest_mem *gm, uint64_t gpa)
{
	for (int i = 0; i < gm->nslots; i++) {
		const struct gmem_slot *s = &gm->slots[i];

		if (gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	const struct gmem_slot *s = gmem_slot_of(gm, gpa);

	if (!s || len > s->size - (gpa - s->gpa))
		return NULL;
	return s->host + (gpa - s->gpa);
}

bool gmem_is_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	while (len) {
		const struct gmem_slot *s = gmem_slot_of(gm, gpa);
		uint64_t n;

		if (!s)
			return false;
		n = s->size - (gpa - s->gpa);
		if (n >= len)
			return true;
		gpa += n;
		len -= n;
	}
	return true;
}

static int gmem_copy(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len, bool write)
{
	uint8_t *p = buf;

	if (!gmem_is_ram(gm, gpa, len))
		return -EFAULT;
	while (len) {
		const struct gmem_slot *s = gmem_slot_of(gm, gpa);
		uint64_t n = s->size - (gpa - s->gpa);

		if (n > len)
			n = len;
		if (write)
			memcpy(s->host + (gpa - s->gpa), p, n);
		else
			memcpy(p, s->host + (gpa - s->gpa), n);
		gpa += n;
		p += n;
		len -= n;
	}
	return 0;
}

int gmem_read(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len)
{
	return gmem_copy(gm, gpa, buf, len, false);
}

int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, size_t len)
{
	return gmem_copy(gm, gpa, (void *)buf, len, true);
}

void gmem_init_buffer(struct guest_mem *gm, void *buf, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->slots[0] = (struct gmem_slot){ 0, size, buf };
	gm->nslots = 1;
	gm->ram_size = size;
	gm->memfd = -1;
}

int gmem_alloc(struct guest_mem *gm, uint64_t ram_size)
{
	const uint64_t align = 2ULL << 20;
	uint64_t low = ram_size < GMEM_PCI_HOLE_START ? ram_size : GMEM_PCI_HOLE_START;
	uint64_t high = ram_size - low;
	uint8_t *map, *host;
	size_t len;

	memset(gm, 0, sizeof(*gm));
	gm->memfd = -1;
	if (ram_size == 0 || ram_size % PAGE_SIZE_4K)
		return -EINVAL;
	len = ram_size + align;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	host = (uint8_t *)(((uintptr_t)map + align - 1) & ~(uintptr_t)(align - 1));
	madvise(host, ram_size, MADV_HUGEPAGE);
	/* Guest RAM is not worth a core dump and must not be shared with children. */
	madvise(host, ram_size, MADV_DONTDUMP);
	madvise(host, ram_size, MADV_DONTFORK);
	gm->map_base = map;
	gm->map_len = len;
	gm->slots[0] = (struct gmem_slot){ 0, low, host };
	gm->nslots = 1;
	if (high)
		gm->slots[gm->nslots++] = (struct gmem_slot){ GMEM_HIGH_START, high, host + low };
	gm->ram_size = ram_size;
	return 0;
}

void gmem_free(struct guest_mem *gm)
{
	if (gm->map_base)
		munmap(gm->map_base, gm->map_len);
	if (gm->memfd >= 0)
		close(gm->memfd);
	memset(gm, 0, sizeof(*gm));
	gm->memfd = -1;
}
