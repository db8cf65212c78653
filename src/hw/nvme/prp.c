/*
 * The one PRP walker (NVMe 1.4 §4.3), used for I/O data and for every admin
 * data copy (Identify, logs, DSM ranges), so buffers that cross pages are
 * handled the same way everywhere.
 *
 *  - PRP1 may carry an offset into its page (dword aligned).
 *  - If the rest of the transfer fits in one page, PRP2 points at it (offset 0).
 *  - Otherwise PRP2 points at a PRP list (qword aligned, may start mid-page);
 *    when more entries are needed than the list page holds, its last entry
 *    points at the next list page. Every data entry after PRP1 has offset 0.
 *
 * Every address is checked against guest RAM: a list entry or data page
 * outside RAM gives Data Transfer Error, a misaligned one Invalid PRP Offset.
 */
#include <endian.h>
#include <string.h>

#include "nvme.h"

uint16_t nvme_prp_begin(struct nvme_prp_iter *it, const struct guest_mem *gm, uint64_t ps,
			uint64_t prp1, uint64_t prp2, uint64_t len)
{
	*it = (struct nvme_prp_iter){ .gm = gm, .ps = ps, .prp2 = prp2, .remaining = len };
	it->list = prp1;	/* the first segment is PRP1 itself */
	/* §4.3: "the offset shall be dword aligned" */
	if (prp1 & 3)
		return NVME_INVALID_PRP_OFFSET | NVME_DNR;
	return NVME_SUCCESS;
}

static uint16_t nvme_prp_read_entry(struct nvme_prp_iter *it, uint64_t *entry)
{
	uint64_t le;

	if (gmem_read(it->gm, it->list, &le, sizeof(le)) < 0)
		return NVME_DATA_TRANSFER_ERROR;
	*entry = le64toh(le);
	it->list += 8;
	it->list_left--;
	return NVME_SUCCESS;
}

uint16_t nvme_prp_next(struct nvme_prp_iter *it, uint64_t *gpa, uint64_t *len)
{
	const uint64_t mask = it->ps - 1;
	uint64_t seg, n;
	uint16_t st;

	*len = 0;
	if (!it->remaining)
		return NVME_SUCCESS;

	if (it->index == 0) {
		seg = it->list;
		n = it->ps - (seg & mask);
		it->list = 0;
	} else if (it->index == 1 && it->remaining <= it->ps) {
		/* PRP2 is the second (last) data page */
		if (it->prp2 & mask)
			return NVME_INVALID_PRP_OFFSET | NVME_DNR;
		seg = it->prp2;
		n = it->ps;
	} else {
		if (it->index == 1) {
			/* PRP2 is a PRP list pointer: entries up to the end of its page */
			if (it->prp2 & 7)
				return NVME_INVALID_PRP_OFFSET | NVME_DNR;
			it->list = it->prp2;
			it->list_left = (it->ps - (it->prp2 & mask)) / 8;
		}
		if (it->list_left == 1 && it->remaining > it->ps) {
			/* the last entry of a full list page chains to the next page */
			uint64_t next;

			st = nvme_prp_read_entry(it, &next);
			if (st)
				return st;
			if (next & mask)
				return NVME_INVALID_PRP_OFFSET | NVME_DNR;
			it->list = next;
			it->list_left = it->ps / 8;
		}
		st = nvme_prp_read_entry(it, &seg);
		if (st)
			return st;
		if (seg & mask)
			return NVME_INVALID_PRP_OFFSET | NVME_DNR;
		n = it->ps;
	}
	if (n > it->remaining)
		n = it->remaining;
	it->remaining -= n;
	it->index++;
	*gpa = seg;
	*len = n;
	return NVME_SUCCESS;
}

uint16_t nvme_prp_map(struct nvme_ctrl *c, const struct nvme_cmd *cmd, uint64_t len,
		      struct iovec *iov, unsigned max, unsigned *niov)
{
	struct nvme_prp_iter it;
	unsigned k = 0;
	uint16_t st;

	st = nvme_prp_begin(&it, &c->m->mem, c->page_size, cmd->prp1, cmd->prp2, len);
	while (!st) {
		uint64_t gpa, n;
		uint8_t *host;

		st = nvme_prp_next(&it, &gpa, &n);
		if (st || !n)
			break;
		host = gmem_ptr(&c->m->mem, gpa, n);
		if (!host) {
			st = NVME_DATA_TRANSFER_ERROR;
			break;
		}
		if (k && (uint8_t *)iov[k - 1].iov_base + iov[k - 1].iov_len == host) {
			iov[k - 1].iov_len += n;
		} else if (k < max) {
			iov[k].iov_base = host;
			iov[k].iov_len = n;
			k++;
		} else {
			/* cannot happen within MDTS; refuse rather than overflow */
			st = NVME_INVALID_FIELD | NVME_DNR;
		}
	}
	*niov = k;
	return st;
}

uint16_t nvme_prp_copy(struct nvme_ctrl *c, const struct nvme_cmd *cmd, uint64_t len,
		       uint64_t off, void *buf, uint64_t n, bool to_guest)
{
	struct nvme_prp_iter it;
	uint8_t *p = buf;
	uint64_t pos = 0;
	uint16_t st;

	st = nvme_prp_begin(&it, &c->m->mem, c->page_size, cmd->prp1, cmd->prp2, len);
	while (!st && n) {
		uint64_t gpa, seg, skip, cnt;
		int ret;

		st = nvme_prp_next(&it, &gpa, &seg);
		if (st || !seg)
			break;
		if (pos + seg <= off) {
			pos += seg;
			continue;
		}
		skip = off > pos ? off - pos : 0;
		cnt = seg - skip < n ? seg - skip : n;
		if (to_guest)
			ret = gmem_write(&c->m->mem, gpa + skip, p, cnt);
		else
			ret = gmem_read(&c->m->mem, gpa + skip, p, cnt);
		if (ret < 0)
			st = NVME_DATA_TRANSFER_ERROR;
		p += cnt;
		n -= cnt;
		pos += seg;
		off = pos;
	}
	return st;
}
