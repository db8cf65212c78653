/*
 * fw_cfg component tests: the test plays the firmware (SeaBIOS's and OVMF's
 * QemuFwCfgLib access patterns) against the device's ports, with guest RAM
 * as a plain buffer; plus the x86 items (etc/e820, the kernel items of
 * QEMU's x86_load_linux) and the firmware image checks.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../harness.h"
#include "amber/device.h"
#include "amber/fw_cfg.h"

#define RAM_SIZE   (1u << 20)
#define DESC_GPA   0x1000		/* where tests put the DMA descriptor */
#define BUF_GPA    0x2000		/* and the DMA buffer */

struct fx {
	struct test_machine *t;
	struct device *dev;
	char tmpdir[64];
};

static struct fx *fx_new(const char *args)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256] = "";

	assert_non_null(f);
	f->t = test_machine_new(RAM_SIZE);
	if (device_create(&f->t->m, "fw_cfg", "fw_cfg", args, &f->dev, err, sizeof(err)) < 0)
		fail_msg("device_create: %s", err);
	strcpy(f->tmpdir, "/tmp/amber-fwcfg-test.XXXXXX");
	assert_non_null(mkdtemp(f->tmpdir));
	return f;
}

static void fx_free(struct fx *f)
{
	char cmd[128];

	device_destroy_all(&f->t->m);
	test_machine_free(f->t);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmpdir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

static void sel(struct fx *f, uint16_t key)
{
	pio_out(f->t, PORT_FW_CFG, 2, key);
}

static uint8_t data_byte(struct fx *f)
{
	return (uint8_t)pio_in(f->t, PORT_FW_CFG + 1, 1);
}

static void read_port(struct fx *f, uint16_t key, void *buf, size_t len)
{
	sel(f, key);
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = data_byte(f);
}

/* Write the descriptor at DESC_GPA and start the transfer as OVMF does (high, then low). */
static uint32_t dma_at(struct fx *f, uint64_t desc_gpa, uint32_t control, uint32_t len, uint64_t addr)
{
	struct fw_cfg_dma_access d = { htobe32(control), htobe32(len), htobe64(addr) };
	uint32_t back;

	if (desc_gpa + sizeof(d) <= f->t->ram_size)
		memcpy(f->t->ram + desc_gpa, &d, sizeof(d));
	pio_out(f->t, PORT_FW_CFG_DMA, 4, htobe32((uint32_t)(desc_gpa >> 32)));
	pio_out(f->t, PORT_FW_CFG_DMA + 4, 4, htobe32((uint32_t)desc_gpa));
	if (desc_gpa + sizeof(d) > f->t->ram_size)
		return 0xdeadbeef;
	memcpy(&back, f->t->ram + desc_gpa, 4);
	return be32toh(back);
}

static uint32_t dma(struct fx *f, uint32_t control, uint32_t len, uint64_t addr)
{
	return dma_at(f, DESC_GPA, control, len, addr);
}

static uint32_t dma_read_key(struct fx *f, uint16_t key, uint32_t len)
{
	return dma(f, (uint32_t)key << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ, len, BUF_GPA);
}

static char *write_tmp(struct fx *f, const char *name, const void *data, size_t len)
{
	static char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->tmpdir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	if (len)
		assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
	return path;
}

/* ---- port interface ---- */

static void test_signature_reads_qemu_through_data_port(void **state)
{
	struct fx *f = fx_new(NULL);
	char sig[5] = "";

	read_port(f, FW_CFG_SIGNATURE, sig, 4);
	assert_string_equal(sig, "QEMU");
	/* Past the end of the item: zeros. */
	assert_int_equal(data_byte(f), 0);
	/* A byte read at the selector port also reads data (QEMU's comb region). */
	sel(f, FW_CFG_SIGNATURE);
	assert_int_equal(pio_in(f->t, PORT_FW_CFG, 1), 'Q');
	fx_free(f);
}

static void test_selector_reset_restarts_item_at_offset_zero(void **state)
{
	struct fx *f = fx_new(NULL);

	sel(f, FW_CFG_SIGNATURE);
	assert_int_equal(data_byte(f), 'Q');
	assert_int_equal(data_byte(f), 'E');
	sel(f, FW_CFG_SIGNATURE);
	assert_int_equal(data_byte(f), 'Q');
	/* Byte writes to the data port are ignored, not a selection. */
	pio_out(f->t, PORT_FW_CFG + 1, 1, 0x01);
	assert_int_equal(data_byte(f), 'E');
	fx_free(f);
}

static void test_id_has_dma_bit(void **state)
{
	struct fx *f = fx_new(NULL);
	uint32_t id;

	read_port(f, FW_CFG_ID, &id, 4);
	assert_int_equal(le32toh(id), FW_CFG_VERSION | FW_CFG_VERSION_DMA);
	fx_free(f);
}

static void test_id_without_dma_bit_and_no_dma_ports_when_dma_off(void **state)
{
	struct fx *f = fx_new("dma=off");
	uint32_t id;

	read_port(f, FW_CFG_ID, &id, 4);
	assert_int_equal(le32toh(id), FW_CFG_VERSION);
	/* Unclaimed port: all ones. */
	assert_int_equal(pio_in(f->t, PORT_FW_CFG_DMA, 4), 0xffffffff);
	fx_free(f);
}

static void test_dma_register_reads_qemu_cfg_signature(void **state)
{
	struct fx *f = fx_new(NULL);
	uint32_t hi = (uint32_t)pio_in(f->t, PORT_FW_CFG_DMA, 4);
	uint32_t lo = (uint32_t)pio_in(f->t, PORT_FW_CFG_DMA + 4, 4);
	char s[9];

	memcpy(s, &hi, 4);
	memcpy(s + 4, &lo, 4);
	s[8] = 0;
	assert_string_equal(s, "QEMU CFG");
	fx_free(f);
}

static void test_unknown_and_out_of_range_keys_read_as_zero(void **state)
{
	struct fx *f = fx_new(NULL);

	sel(f, FW_CFG_KERNEL_SIZE);		/* valid key, no item */
	assert_int_equal(data_byte(f), 0);
	sel(f, 0x3fff);				/* beyond the table */
	assert_int_equal(data_byte(f), 0);
	sel(f, FW_CFG_INVALID);
	assert_int_equal(data_byte(f), 0);
	fx_free(f);
}

static void test_uuid_is_sixteen_zero_bytes(void **state)
{
	struct fx *f = fx_new(NULL);
	uint8_t u[16], zero[16] = { 0 };

	memset(u, 0xaa, sizeof(u));
	assert_int_equal(dma_read_key(f, FW_CFG_UUID, 16), 0);
	memcpy(u, f->t->ram + BUF_GPA, 16);
	assert_memory_equal(u, zero, 16);
	fx_free(f);
}

/* ---- items and the file directory ---- */

static void test_file_dir_sorted_by_name_big_endian(void **state)
{
	struct fx *f = fx_new(NULL);
	uint8_t dir[4 + 3 * sizeof(struct fw_cfg_file)];
	struct fw_cfg_file e[3];
	uint32_t count;

	assert_int_equal(fw_cfg_add_file(f->dev, "opt/zeta", "zz", 2), 0);
	assert_int_equal(fw_cfg_add_file(f->dev, "etc/e820", "0123456789", 10), 0);
	assert_int_equal(fw_cfg_add_file(f->dev, "bootorder", "x", 1), 0);
	read_port(f, FW_CFG_FILE_DIR, dir, sizeof(dir));
	memcpy(&count, dir, 4);
	assert_int_equal(be32toh(count), 3);
	memcpy(e, dir + 4, sizeof(e));
	assert_string_equal(e[0].name, "bootorder");
	assert_string_equal(e[1].name, "etc/e820");
	assert_string_equal(e[2].name, "opt/zeta");
	assert_int_equal(be32toh(e[0].size), 1);
	assert_int_equal(be32toh(e[1].size), 10);
	assert_int_equal(be32toh(e[2].size), 2);
	/* Keys follow name order, as QEMU renumbers on insertion. */
	assert_int_equal(be16toh(e[0].select), FW_CFG_FILE_FIRST);
	assert_int_equal(be16toh(e[1].select), FW_CFG_FILE_FIRST + 1);
	assert_int_equal(be16toh(e[2].select), FW_CFG_FILE_FIRST + 2);
	assert_int_equal(fw_cfg_file_key(f->dev, "opt/zeta"), FW_CFG_FILE_FIRST + 2);
	assert_int_equal(fw_cfg_file_key(f->dev, "nope"), -ENOENT);
	fx_free(f);
}

static void test_file_read_by_selector_across_data_port(void **state)
{
	struct fx *f = fx_new(NULL);
	char buf[16] = "";
	int key;

	assert_int_equal(fw_cfg_add_file(f->dev, "opt/b", "second", 6), 0);
	assert_int_equal(fw_cfg_add_file(f->dev, "opt/a", "first!", 6), 0);
	key = fw_cfg_file_key(f->dev, "opt/b");
	assert_int_equal(key, FW_CFG_FILE_FIRST + 1);
	read_port(f, (uint16_t)key, buf, 6);
	assert_string_equal(buf, "second");
	assert_int_equal(data_byte(f), 0);
	read_port(f, FW_CFG_FILE_FIRST, buf, 6);
	assert_string_equal(buf, "first!");
	fx_free(f);
}

static void test_duplicate_file_and_key_are_refused(void **state)
{
	struct fx *f = fx_new(NULL);

	assert_int_equal(fw_cfg_add_file(f->dev, "etc/x", "a", 1), 0);
	assert_int_equal(fw_cfg_add_file(f->dev, "etc/x", "b", 1), -EEXIST);
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_KERNEL_SIZE, 1), 0);
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_KERNEL_SIZE, 2), -EEXIST);
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_SIGNATURE, 2), -EEXIST);
	/* File keys and the directory are not for fw_cfg_add_bytes. */
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_FILE_FIRST, 2), -EINVAL);
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_FILE_DIR, 2), -EINVAL);
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_WRITE_CHANNEL | 0x10, 2), -EINVAL);
	/* Names are at most 55 bytes. */
	char name[FW_CFG_MAX_FILE_PATH + 1];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	assert_int_equal(fw_cfg_add_file(f->dev, name, "a", 1), -EINVAL);
	name[FW_CFG_MAX_FILE_PATH - 1] = 0;
	assert_int_equal(fw_cfg_add_file(f->dev, name, "a", 1), 0);
	fx_free(f);
}

static void test_file_slots_run_out_with_enospc(void **state)
{
	struct fx *f = fx_new(NULL);
	char name[32];

	for (int i = 0; i < FW_CFG_FILE_SLOTS; i++) {
		snprintf(name, sizeof(name), "opt/f%03d", i);
		assert_int_equal(fw_cfg_add_file(f->dev, name, "x", 1), 0);
	}
	assert_int_equal(fw_cfg_add_file(f->dev, "opt/one-too-many", "x", 1), -ENOSPC);
	assert_int_equal(fw_cfg_file_key(f->dev, "opt/f063"), FW_CFG_MAX_ENTRY - 1);
	fx_free(f);
}

static void test_arch_local_items_are_separate_from_generic(void **state)
{
	struct fx *f = fx_new(NULL);
	uint32_t v;

	char sig[5] = "";

	/* 0x8000 is arch-local entry 0; generic entry 0 stays the signature. */
	assert_int_equal(fw_cfg_add_i32(f->dev, FW_CFG_ACPI_TABLES, 0x01020304), 0);
	read_port(f, FW_CFG_ACPI_TABLES, &v, 4);
	assert_int_equal(le32toh(v), 0x01020304);
	read_port(f, FW_CFG_SIGNATURE, sig, 4);
	assert_string_equal(sig, "QEMU");
	fx_free(f);
}

/* ---- DMA ---- */

static void test_dma_read_with_select_copies_item_and_clears_control(void **state)
{
	struct fx *f = fx_new(NULL);

	assert_int_equal(fw_cfg_add_file(f->dev, "etc/data", "0123456789", 10), 0);
	memset(f->t->ram + BUF_GPA, 0xee, 16);
	assert_int_equal(dma_read_key(f, (uint16_t)fw_cfg_file_key(f->dev, "etc/data"), 4), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "0123", 4);
	assert_int_equal(f->t->ram[BUF_GPA + 4], 0xee);
	/* The offset moved on: a READ without SELECT continues. */
	assert_int_equal(dma(f, FW_CFG_DMA_CTL_READ, 3, BUF_GPA), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "456", 3);
	/* And the port continues from there too. */
	assert_int_equal(data_byte(f), '7');
	fx_free(f);
}

static void test_dma_skip_advances_offset_without_writing(void **state)
{
	struct fx *f = fx_new(NULL);
	uint16_t key;

	assert_int_equal(fw_cfg_add_file(f->dev, "etc/data", "abcdefgh", 8), 0);
	key = (uint16_t)fw_cfg_file_key(f->dev, "etc/data");
	memset(f->t->ram + BUF_GPA, 0xee, 8);
	assert_int_equal(dma(f, (uint32_t)key << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_SKIP,
			     5, BUF_GPA), 0);
	assert_int_equal(f->t->ram[BUF_GPA], 0xee);
	/* SeaBIOS's skip passes address 0: nothing may be written there either. */
	f->t->ram[0] = 0x5a;
	assert_int_equal(dma(f, FW_CFG_DMA_CTL_SKIP, 1, 0), 0);
	assert_int_equal(f->t->ram[0], 0x5a);
	assert_int_equal(dma(f, FW_CFG_DMA_CTL_READ, 2, BUF_GPA), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "gh", 2);
	fx_free(f);
}

static void test_dma_select_only_selects_and_resets_offset(void **state)
{
	struct fx *f = fx_new(NULL);

	sel(f, FW_CFG_ID);
	data_byte(f);
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT, 100, BUF_GPA), 0);
	assert_int_equal(data_byte(f), 'Q');
	fx_free(f);
}

static void test_dma_read_past_end_fills_zeros(void **state)
{
	struct fx *f = fx_new(NULL);
	uint8_t expect[8] = { 'Q', 'E', 'M', 'U', 0, 0, 0, 0 };

	memset(f->t->ram + BUF_GPA, 0xee, 16);
	assert_int_equal(dma_read_key(f, FW_CFG_SIGNATURE, 8), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, expect, 8);
	assert_int_equal(f->t->ram[BUF_GPA + 8], 0xee);
	fx_free(f);
}

static void test_dma_write_to_read_only_item_sets_error(void **state)
{
	struct fx *f = fx_new(NULL);
	char sig[5] = "";

	memcpy(f->t->ram + BUF_GPA, "XXXX", 4);
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_WRITE, 4, BUF_GPA), FW_CFG_DMA_CTL_ERROR);
	read_port(f, FW_CFG_SIGNATURE, sig, 4);
	assert_string_equal(sig, "QEMU");
	fx_free(f);
}

static void test_dma_buffer_outside_ram_sets_error(void **state)
{
	struct fx *f = fx_new(NULL);

	assert_int_equal(dma_read_key(f, FW_CFG_SIGNATURE, 4) , 0);
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_READ, 4, RAM_SIZE), FW_CFG_DMA_CTL_ERROR);
	/* Straddling the end of RAM is outside too. */
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_READ, 4, RAM_SIZE - 2), FW_CFG_DMA_CTL_ERROR);
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_READ, 4, UINT64_MAX - 1), FW_CFG_DMA_CTL_ERROR);
	fx_free(f);
}

static void test_dma_oversized_length_is_bounded_by_ram(void **state)
{
	struct fx *f = fx_new(NULL);

	/* 4 GiB - 1 of zeros past the item's end cannot fit in 1 MiB of RAM. */
	memset(f->t->ram + BUF_GPA, 0xee, 16);
	assert_int_equal(dma_read_key(f, FW_CFG_SIGNATURE, UINT32_MAX), FW_CFG_DMA_CTL_ERROR);
	assert_int_equal(f->t->ram[BUF_GPA + 4], 0xee);
	/* A huge skip is fine: it only moves the offset. */
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_SKIP, UINT32_MAX, 0), 0);
	assert_int_equal(data_byte(f), 0);
	fx_free(f);
}

static void test_dma_descriptor_outside_ram_is_ignored(void **state)
{
	struct fx *f = fx_new(NULL);

	/* Nothing to read, nothing to write back; the device keeps working. */
	dma_at(f, RAM_SIZE + 0x1000, FW_CFG_DMA_CTL_READ, 4, BUF_GPA);
	dma_at(f, RAM_SIZE - 8, FW_CFG_DMA_CTL_READ, 4, BUF_GPA);
	assert_int_equal(dma_read_key(f, FW_CFG_SIGNATURE, 4), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "QEMU", 4);
	fx_free(f);
}

static void test_dma_descriptor_straddling_ram_end_gets_error_in_control(void **state)
{
	struct fx *f = fx_new(NULL);
	uint32_t c;

	/* The control word is in RAM, the rest is not: QEMU writes ERROR there. */
	memset(f->t->ram + RAM_SIZE - 8, 0, 8);
	pio_out(f->t, PORT_FW_CFG_DMA, 4, 0);
	pio_out(f->t, PORT_FW_CFG_DMA + 4, 4, htobe32(RAM_SIZE - 8));
	memcpy(&c, f->t->ram + RAM_SIZE - 8, 4);
	assert_int_equal(be32toh(c), FW_CFG_DMA_CTL_ERROR);
	fx_free(f);
}

static void test_dma_no_operation_bits_transfers_nothing(void **state)
{
	struct fx *f = fx_new(NULL);

	memset(f->t->ram + BUF_GPA, 0xee, 4);
	assert_int_equal(dma(f, 0xffff0000u | FW_CFG_DMA_CTL_SELECT, 4, BUF_GPA), 0);
	assert_int_equal(f->t->ram[BUF_GPA], 0xee);
	/* Unknown high control bits with READ: READ wins. */
	assert_int_equal(dma(f, (uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
			     FW_CFG_DMA_CTL_READ | FW_CFG_DMA_CTL_WRITE | 0x80, 4, BUF_GPA), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "QEMU", 4);
	fx_free(f);
}

static void test_dma_high_half_is_cleared_after_each_transfer(void **state)
{
	struct fx *f = fx_new(NULL);
	struct fw_cfg_dma_access d = {
		htobe32((uint32_t)FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ),
		htobe32(4), htobe64(BUF_GPA),
	};

	memcpy(f->t->ram + DESC_GPA, &d, sizeof(d));
	/* High half 1: descriptor at 4 GiB + DESC_GPA, outside RAM, nothing happens. */
	pio_out(f->t, PORT_FW_CFG_DMA, 4, htobe32(1));
	pio_out(f->t, PORT_FW_CFG_DMA + 4, 4, htobe32(DESC_GPA));
	assert_int_not_equal(be32toh(*(uint32_t *)(f->t->ram + DESC_GPA)), 0);
	/* SeaBIOS writes only the low half: it must address low memory. */
	pio_out(f->t, PORT_FW_CFG_DMA + 4, 4, htobe32(DESC_GPA));
	assert_int_equal(be32toh(*(uint32_t *)(f->t->ram + DESC_GPA)), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, "QEMU", 4);
	fx_free(f);
}

/* ---- saved state ---- */

static void test_state_round_trip_keeps_selector_and_offset(void **state)
{
	struct fx *a = fx_new(NULL), *b = fx_new(NULL);
	const struct device_class *cls = a->dev->cls;
	json_t *o = json_object();
	char err[256] = "";

	sel(a, FW_CFG_SIGNATURE);
	data_byte(a);
	data_byte(a);
	pio_out(a->t, PORT_FW_CFG_DMA, 4, htobe32(0x12));
	assert_int_equal(cls->save(a->dev, o), 0);
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), 0);
	assert_int_equal(cls->load(b->dev, o, cls->state_version), 0);
	assert_int_equal(data_byte(b), 'M');
	/* The latched high half came along: the low write uses 0x12'xxxxxxxx. */
	memset(b->t->ram + BUF_GPA, 0xee, 4);
	pio_out(b->t, PORT_FW_CFG_DMA + 4, 4, htobe32(DESC_GPA));
	assert_int_equal(b->t->ram[BUF_GPA], 0xee);
	json_decref(o);
	fx_free(a);
	fx_free(b);
}

static void test_state_check_rejects_bad_selector_and_dma_low_half(void **state)
{
	struct fx *f = fx_new(NULL);
	const struct device_class *cls = f->dev->cls;
	json_t *o = json_object();
	char err[256] = "";

	assert_int_equal(cls->save(f->dev, o), 0);
	json_object_set_new(o, "cur_entry", json_integer(0x3fff));
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cur_entry"));
	/* A guest may select with the write-channel bit: that state must load. */
	json_object_set_new(o, "cur_entry", json_integer(FW_CFG_WRITE_CHANNEL | FW_CFG_ID));
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), 0);
	json_object_set_new(o, "cur_entry", json_integer(FW_CFG_INVALID));
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), 0);
	json_object_set_new(o, "dma_addr", json_integer(0x1234));
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "dma_addr"));
	json_object_del(o, "cur_offset");
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), -EINVAL);
	json_decref(o);
	fx_free(f);
}

static void test_every_selector_a_guest_writes_saves_and_checks(void **state)
{
	struct fx *f = fx_new(NULL);
	const struct device_class *cls = f->dev->cls;
	char err[256] = "";

	for (uint32_t key = 0; key <= 0xffff; key++) {
		json_t *o = json_object();

		sel(f, (uint16_t)key);
		data_byte(f);
		assert_int_equal(cls->save(f->dev, o), 0);
		if (cls->check(o, cls->state_version, err, sizeof(err)) < 0)
			fail_msg("selector %#x: %s", key, err);
		json_decref(o);
	}
	fx_free(f);
}

static void test_reset_selects_signature_and_clears_dma_latch(void **state)
{
	struct fx *f = fx_new(NULL);

	sel(f, FW_CFG_ID);
	pio_out(f->t, PORT_FW_CFG_DMA, 4, htobe32(1));
	f->dev->cls->reset(f->dev);
	assert_int_equal(data_byte(f), 'Q');
	assert_int_equal(dma_read_key(f, FW_CFG_SIGNATURE, 4), 0);
	fx_free(f);
}

/* ---- x86 items ---- */

static void gm_with(struct guest_mem *gm, uint64_t low, uint64_t high)
{
	memset(gm, 0, sizeof(*gm));
	gm->slots[0] = (struct gmem_slot){ 0, low, NULL };
	gm->nslots = 1;
	if (high)
		gm->slots[gm->nslots++] = (struct gmem_slot){ GMEM_HIGH_START, high, NULL };
	gm->ram_size = low + high;
	gm->memfd = -1;
}

static void assert_e820(const struct e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(le64toh(e->addr), addr);
	assert_int_equal(le64toh(e->size), size);
	assert_int_equal(le32toh(e->type), type);
}

static void test_e820_256m_is_qemu_layout(void **state)
{
	struct guest_mem gm;
	struct e820_entry tab[8];

	gm_with(&gm, 256 << 20, 0);
	assert_int_equal(sizeof(struct e820_entry), 20);
	assert_int_equal(fw_cfg_x86_e820(&gm, tab, 8), 2);
	assert_e820(&tab[0], 0xfeffc000, 0x4000, E820_RESERVED);
	assert_e820(&tab[1], 0, 256 << 20, E820_RAM);
	assert_int_equal(fw_cfg_x86_e820(&gm, tab, 1), -ENOSPC);
}

static void test_e820_5g_splits_at_3g_and_continues_at_4g(void **state)
{
	struct guest_mem gm;
	struct e820_entry tab[8];

	gm_with(&gm, 3ULL << 30, 2ULL << 30);
	assert_int_equal(fw_cfg_x86_e820(&gm, tab, 8), 3);
	assert_e820(&tab[0], 0xfeffc000, 0x4000, E820_RESERVED);
	assert_e820(&tab[1], 0, 3ULL << 30, E820_RAM);
	assert_e820(&tab[2], 4ULL << 30, 2ULL << 30, E820_RAM);
}

static void test_pci_windows_cover_seabios_and_ovmf_placement(void **state)
{
	struct guest_mem gm;
	uint64_t b32, b64, e64;

	gm_with(&gm, 256 << 20, 0);
	fw_cfg_x86_pci_windows(&gm, &b32, &b64, &e64);
	assert_int_equal(b32, 256 << 20);
	assert_int_equal(b64, 4ULL << 30);
	/* OVMF: aperture 32 GiB aligned to 32 GiB, so [32 GiB, 64 GiB). */
	assert_int_equal(e64, (64ULL << 30) - 1);

	gm_with(&gm, 3ULL << 30, (2ULL << 30) + (4 << 20));
	fw_cfg_x86_pci_windows(&gm, &b32, &b64, &e64);
	assert_int_equal(b32, 3ULL << 30);
	assert_int_equal(b64, 7ULL << 30);
	assert_int_equal(e64, (64ULL << 30) - 1);

	gm_with(&gm, 3ULL << 30, 61ULL << 30);
	fw_cfg_x86_pci_windows(&gm, &b32, &b64, &e64);
	assert_int_equal(b64, 65ULL << 30);
	assert_int_equal(e64, (128ULL << 30) - 1);	/* OVMF: [96 GiB, 128 GiB) */
}

static void test_machine_items_like_qemu_pc(void **state)
{
	struct fx *f = fx_new(NULL);
	struct e820_entry tab[2];
	uint64_t ram;
	uint16_t v16;
	uint32_t v32, size;
	uint8_t numa[8 * 4];
	int key;

	assert_int_equal(fw_cfg_x86_add_machine(f->dev, &f->t->m.mem, 3), 0);
	read_port(f, FW_CFG_RAM_SIZE, &ram, 8);
	assert_int_equal(le64toh(ram), RAM_SIZE);
	read_port(f, FW_CFG_NB_CPUS, &v16, 2);
	assert_int_equal(le16toh(v16), 3);
	read_port(f, FW_CFG_MAX_CPUS, &v16, 2);
	assert_int_equal(le16toh(v16), 3);
	read_port(f, FW_CFG_BOOT_MENU, &v16, 2);
	assert_int_equal(v16, 0);
	read_port(f, FW_CFG_IRQ0_OVERRIDE, &v32, 4);
	assert_int_equal(le32toh(v32), 1);
	/* NUMA: count 0 and one slot per CPU; one byte more reads as end. */
	memset(numa, 0xee, sizeof(numa));
	assert_int_equal(dma_read_key(f, FW_CFG_NUMA, 32), 0);
	memcpy(numa, f->t->ram + BUF_GPA, 32);
	for (int i = 0; i < 32; i++)
		assert_int_equal(numa[i], 0);
	key = fw_cfg_file_key(f->dev, "etc/e820");
	assert_true(key >= FW_CFG_FILE_FIRST);
	sel(f, FW_CFG_FILE_DIR);
	read_port(f, FW_CFG_FILE_DIR, &v32, 4);
	assert_int_equal(be32toh(v32), 1);
	{
		struct fw_cfg_file e;

		for (size_t i = 0; i < sizeof(e); i++)
			((uint8_t *)&e)[i] = data_byte(f);
		size = be32toh(e.size);
	}
	assert_int_equal(size, 2 * sizeof(struct e820_entry));
	read_port(f, (uint16_t)key, tab, sizeof(tab));
	assert_e820(&tab[0], 0xfeffc000, 0x4000, E820_RESERVED);
	assert_e820(&tab[1], 0, RAM_SIZE, E820_RAM);
	fx_free(f);
}

/* A minimal bzImage: setup_sects 2 (3 sectors of setup), then a payload. */
#define FAKE_SETUP_SECTS 2
#define FAKE_SETUP_SIZE  ((FAKE_SETUP_SECTS + 1) * 512)
#define FAKE_KERNEL_SIZE 5000

static uint8_t *fake_bzimage(uint16_t version, uint32_t initrd_addr_max, bool above_4g, size_t *len)
{
	uint8_t *k = calloc(1, FAKE_SETUP_SIZE + FAKE_KERNEL_SIZE);

	assert_non_null(k);
	k[0x1f1] = FAKE_SETUP_SECTS;
	k[0x1fe] = 0x55;
	k[0x1ff] = 0xaa;
	memcpy(k + 0x202, "HdrS", 4);
	k[0x206] = (uint8_t)version;
	k[0x207] = (uint8_t)(version >> 8);
	k[0x211] = 0x01;				/* LOADED_HIGH */
	memcpy(k + 0x22c, &initrd_addr_max, 4);
	k[0x236] = above_4g ? 0x03 : 0x01;		/* XLF_KERNEL_64 | CAN_BE_LOADED_ABOVE_4G */
	for (int i = 0; i < FAKE_KERNEL_SIZE; i++)
		k[FAKE_SETUP_SIZE + i] = (uint8_t)(i * 7 + 1);
	*len = FAKE_SETUP_SIZE + FAKE_KERNEL_SIZE;
	return k;
}

static uint32_t item32(struct fx *f, uint16_t key)
{
	uint32_t v;

	read_port(f, key, &v, 4);
	return le32toh(v);
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }

static void test_kernel_items_for_bzimage_like_qemu(void **state)
{
	struct fx *f = fx_new(NULL);
	const char *cmdline = "console=ttyS0 quiet";
	uint8_t initrd[10000], *setup;
	char kpath[128], ipath[128], err[256] = "";
	uint64_t below_4g = 256ULL << 20;
	uint32_t initrd_max = (uint32_t)(below_4g - 0x28000 - 1);
	uint32_t initrd_addr = (initrd_max - sizeof(initrd)) & ~4095u;
	size_t klen;
	uint8_t *k = fake_bzimage(0x20f, 0x7fffffff, true, &klen);

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	strcpy(kpath, write_tmp(f, "bzImage", k, klen));
	strcpy(ipath, write_tmp(f, "initrd", initrd, sizeof(initrd)));
	assert_int_equal(fw_cfg_x86_add_linux(f->dev, kpath, ipath, cmdline, below_4g, err, sizeof(err)), 0);

	/* x86_load_linux: "High and recent kernel" addresses. */
	assert_int_equal(item32(f, FW_CFG_SETUP_ADDR), 0x10000);
	assert_int_equal(item32(f, FW_CFG_KERNEL_ADDR), 0x100000);
	assert_int_equal(item32(f, FW_CFG_CMDLINE_ADDR), 0x20000);
	assert_int_equal(item32(f, FW_CFG_CMDLINE_SIZE), strlen(cmdline) + 1);
	assert_int_equal(item32(f, FW_CFG_SETUP_SIZE), FAKE_SETUP_SIZE);
	assert_int_equal(item32(f, FW_CFG_KERNEL_SIZE), FAKE_KERNEL_SIZE);
	assert_int_equal(item32(f, FW_CFG_INITRD_SIZE), sizeof(initrd));
	/* Highest place below RAM end minus QEMU's acpi_data_size, page aligned. */
	assert_int_equal(item32(f, FW_CFG_INITRD_ADDR), initrd_addr);

	assert_int_equal(dma_read_key(f, FW_CFG_CMDLINE_DATA, (uint32_t)strlen(cmdline) + 1), 0);
	assert_string_equal((char *)f->t->ram + BUF_GPA, cmdline);
	assert_int_equal(dma_read_key(f, FW_CFG_KERNEL_DATA, FAKE_KERNEL_SIZE), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, k + FAKE_SETUP_SIZE, FAKE_KERNEL_SIZE);
	assert_int_equal(dma_read_key(f, FW_CFG_INITRD_DATA, sizeof(initrd)), 0);
	assert_memory_equal(f->t->ram + BUF_GPA, initrd, sizeof(initrd));

	/* The setup item carries the patched header. */
	assert_int_equal(dma_read_key(f, FW_CFG_SETUP_DATA, FAKE_SETUP_SIZE), 0);
	setup = f->t->ram + BUF_GPA;
	assert_int_equal(setup[0x210], 0xb0);			/* type_of_loader: QEMU */
	assert_int_equal(setup[0x211], 0x81);			/* LOADED_HIGH | CAN_USE_HEAP */
	assert_int_equal(rd16(setup + 0x224), 0x20000 - 0x10000 - 0x200);	/* heap_end_ptr */
	assert_int_equal(rd32(setup + 0x228), 0x20000);	/* cmd_line_ptr */
	assert_int_equal(rd32(setup + 0x218), initrd_addr);	/* ramdisk_image */
	assert_int_equal(rd32(setup + 0x21c), sizeof(initrd));	/* ramdisk_size */
	assert_memory_equal(setup + 0x202, "HdrS", 4);
	assert_int_equal(setup[0x1fe], 0x55);
	free(k);
	fx_free(f);
}

static void test_kernel_initrd_respects_initrd_addr_max(void **state)
{
	struct fx *f = fx_new(NULL);
	uint8_t initrd[100] = { 1 };
	char kpath[128], ipath[128], err[256] = "";
	size_t klen;
	uint8_t *k = fake_bzimage(0x20a, 0x37ffffff, false, &klen);

	strcpy(kpath, write_tmp(f, "bzImage", k, klen));
	strcpy(ipath, write_tmp(f, "initrd", initrd, sizeof(initrd)));
	assert_int_equal(fw_cfg_x86_add_linux(f->dev, kpath, ipath, NULL, 2ULL << 30, err, sizeof(err)), 0);
	assert_int_equal(item32(f, FW_CFG_INITRD_ADDR), (0x37ffffffu - 100) & ~4095u);
	/* No --cmdline: an empty string with its NUL. */
	assert_int_equal(item32(f, FW_CFG_CMDLINE_SIZE), 1);
	free(k);
	fx_free(f);
}

static void test_kernel_vga_option_sets_vid_mode(void **state)
{
	struct fx *f = fx_new(NULL);
	char kpath[128], err[256] = "";
	size_t klen;
	uint8_t *k = fake_bzimage(0x20f, 0x7fffffff, true, &klen);

	strcpy(kpath, write_tmp(f, "bzImage", k, klen));
	assert_int_equal(fw_cfg_x86_add_linux(f->dev, kpath, NULL, "quiet vga=0x317", 256 << 20, err,
					      sizeof(err)), 0);
	assert_int_equal(dma_read_key(f, FW_CFG_SETUP_DATA, FAKE_SETUP_SIZE), 0);
	assert_int_equal(rd16(f->t->ram + BUF_GPA + 0x1fa), 0x317);
	/* No initrd: no initrd items. */
	assert_int_equal(item32(f, FW_CFG_INITRD_SIZE), 0);
	free(k);
	fx_free(f);
}

static void test_kernel_that_is_not_a_bzimage_is_refused_naming_it(void **state)
{
	struct fx *f = fx_new(NULL);
	char err[256] = "", *path;
	uint8_t junk[4096] = { 0x7f, 'E', 'L', 'F' };

	path = write_tmp(f, "vmlinux", junk, sizeof(junk));
	assert_int_equal(fw_cfg_x86_add_linux(f->dev, path, NULL, NULL, 256 << 20, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "bzImage"));
	assert_int_equal(fw_cfg_x86_add_linux(f->dev, "/nonexistent/bz", NULL, NULL, 256 << 20, err,
					      sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/bz"));
	fx_free(f);
}

static void test_initrd_too_big_for_memory_is_refused(void **state)
{
	struct fx *f = fx_new(NULL);
	char kpath[128], ipath[128], err[256] = "";
	size_t klen;
	uint8_t *k = fake_bzimage(0x20f, 0x7fffffff, true, &klen);
	int fd;

	strcpy(kpath, write_tmp(f, "bzImage", k, klen));
	strcpy(ipath, write_tmp(f, "initrd", NULL, 0));
	fd = open(ipath, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 20 << 20), 0);	/* sparse 20 MiB */
	close(fd);
	assert_true(fw_cfg_x86_add_linux(f->dev, kpath, ipath, NULL, 16 << 20, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, ipath));
	free(k);
	fx_free(f);
}

/* ---- firmware image ---- */

static void test_firmware_image_bad_size_refused_with_message(void **state)
{
	struct fx *f = fx_new(NULL);
	char err[512] = "", path[128];
	void *data = NULL;
	size_t size = 0;
	int fd;

	strcpy(path, write_tmp(f, "odd.fd", NULL, 0));
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65537), 0);
	assert_int_equal(firmware_image_load(path, &data, &size, err, sizeof(err)), -EINVAL);
	assert_null(data);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "64 KiB"));

	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(firmware_image_load(path, &data, &size, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));

	assert_int_equal(ftruncate(fd, 17 << 20), 0);
	assert_int_equal(firmware_image_load(path, &data, &size, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "16 MiB"));

	assert_int_equal(ftruncate(fd, 256 << 10), 0);
	assert_int_equal(firmware_image_load(path, &data, &size, err, sizeof(err)), 0);
	assert_int_equal(size, 256 << 10);
	assert_non_null(data);
	free(data);
	close(fd);

	assert_true(firmware_image_load("/nonexistent/OVMF.fd", &data, &size, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/OVMF.fd"));
	fx_free(f);
}

static void test_debian_firmware_images_are_accepted(void **state)
{
	static const char *const images[] = {
		"/usr/share/ovmf/OVMF.fd", "/usr/share/seabios/bios-256k.bin",
	};
	int found = 0;

	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++) {
		char err[512] = "";
		void *data;
		size_t size;

		if (access(images[i], R_OK) < 0)
			continue;
		found++;
		if (firmware_image_load(images[i], &data, &size, err, sizeof(err)) < 0)
			fail_msg("%s", err);
		assert_int_equal(size % (64 << 10), 0);
		free(data);
	}
	if (!found)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_reads_qemu_through_data_port),
		cmocka_unit_test(test_selector_reset_restarts_item_at_offset_zero),
		cmocka_unit_test(test_id_has_dma_bit),
		cmocka_unit_test(test_id_without_dma_bit_and_no_dma_ports_when_dma_off),
		cmocka_unit_test(test_dma_register_reads_qemu_cfg_signature),
		cmocka_unit_test(test_unknown_and_out_of_range_keys_read_as_zero),
		cmocka_unit_test(test_uuid_is_sixteen_zero_bytes),
		cmocka_unit_test(test_file_dir_sorted_by_name_big_endian),
		cmocka_unit_test(test_file_read_by_selector_across_data_port),
		cmocka_unit_test(test_duplicate_file_and_key_are_refused),
		cmocka_unit_test(test_file_slots_run_out_with_enospc),
		cmocka_unit_test(test_arch_local_items_are_separate_from_generic),
		cmocka_unit_test(test_dma_read_with_select_copies_item_and_clears_control),
		cmocka_unit_test(test_dma_skip_advances_offset_without_writing),
		cmocka_unit_test(test_dma_select_only_selects_and_resets_offset),
		cmocka_unit_test(test_dma_read_past_end_fills_zeros),
		cmocka_unit_test(test_dma_write_to_read_only_item_sets_error),
		cmocka_unit_test(test_dma_buffer_outside_ram_sets_error),
		cmocka_unit_test(test_dma_oversized_length_is_bounded_by_ram),
		cmocka_unit_test(test_dma_descriptor_outside_ram_is_ignored),
		cmocka_unit_test(test_dma_descriptor_straddling_ram_end_gets_error_in_control),
		cmocka_unit_test(test_dma_no_operation_bits_transfers_nothing),
		cmocka_unit_test(test_dma_high_half_is_cleared_after_each_transfer),
		cmocka_unit_test(test_state_round_trip_keeps_selector_and_offset),
		cmocka_unit_test(test_state_check_rejects_bad_selector_and_dma_low_half),
		cmocka_unit_test(test_every_selector_a_guest_writes_saves_and_checks),
		cmocka_unit_test(test_reset_selects_signature_and_clears_dma_latch),
		cmocka_unit_test(test_e820_256m_is_qemu_layout),
		cmocka_unit_test(test_e820_5g_splits_at_3g_and_continues_at_4g),
		cmocka_unit_test(test_pci_windows_cover_seabios_and_ovmf_placement),
		cmocka_unit_test(test_machine_items_like_qemu_pc),
		cmocka_unit_test(test_kernel_items_for_bzimage_like_qemu),
		cmocka_unit_test(test_kernel_initrd_respects_initrd_addr_max),
		cmocka_unit_test(test_kernel_vga_option_sets_vid_mode),
		cmocka_unit_test(test_kernel_that_is_not_a_bzimage_is_refused_naming_it),
		cmocka_unit_test(test_initrd_too_big_for_memory_is_refused),
		cmocka_unit_test(test_firmware_image_bad_size_refused_with_message),
		cmocka_unit_test(test_debian_firmware_images_are_accepted),
	};

	return cmocka_run_group_tests_name("fwcfg", tests, NULL, NULL);
}
