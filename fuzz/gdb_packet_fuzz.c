/*
 * libFuzzer target: the GDB stub's packet parser and every handler, against
 * the fake target of the component tests (RAM behind real page tables).
 *
 * Input: byte 0 picks the vCPU count (1-4); then a stream of bytes fed to
 * the session as if from gdb, except that 0xfe introduces a stop event from
 * the "vCPUs" (next byte: cpu and reason, next byte: slot/address bits), so
 * the fuzzer reaches the running <-> stopped transitions, Ctrl-C, detach
 * and the stop replies. A session that ends (D, k, W) is detached and
 * attached again, as the server does for the next client.
 */
#include <stddef.h>
#include <stdint.h>

#include "amber/log.h"
#include "fake_target.h"
#include "gdb/gdb_proto.h"

static int sink(void *io, const void *buf, size_t len)
{
	/* gdb going away is part of the game: fail sends now and then */
	return (len == 7) ? -EPIPE : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_target t, pristine;
	static uint8_t *ram, *pristine_ram;
	static struct gdb_session s;
	size_t i = 1, start;

	if (size < 1)
		return 0;
	if (!ram) {
		/* build the target once; every run starts from a copy of it */
		log_threshold = LOG_ERROR;
		fake_target_init(&pristine, 1);
		pristine_ram = pristine.ram;
		ram = malloc(FAKE_RAM_SIZE);
		if (!ram)
			return 0;
	}
	memcpy(ram, pristine_ram, FAKE_RAM_SIZE);
	t = pristine;
	t.ram = ram;
	gmem_init_buffer(&t.mem, ram, FAKE_RAM_SIZE);
	pthread_mutex_init(&t.lock, NULL);
	t.ncpus = 1 + data[0] % 4;
	if (gdb_session_init(&s, &fake_ops, &t, sink, NULL) < 0)
		goto out_target;
	if (gdb_session_attach(&s) < 0)
		goto out_session;
	while (i < size) {
		start = i;
		while (i < size && data[i] != 0xfe)
			i++;
		if (i > start && gdb_session_input(&s, data + start, i - start)) {
			gdb_session_detach(&s);
			gdb_session_attach(&s);
		}
		if (i < size && data[i] == 0xfe) {
			uint8_t a = i + 1 < size ? data[i + 1] : 0;
			uint8_t b = i + 2 < size ? data[i + 2] : 0;
			struct gdb_stop_event ev = {
				.cpu = a & 7,	/* may be out of range on purpose */
				.reason = (enum gdb_stop_reason)((a >> 3) % 6),
				.signal = b,
				.slot = b & 3,
				.watch_type = (enum gdb_hw_type)(b % 5),
				.addr = (uint64_t)b << 12,
				.exit_code = b,
			};

			gdb_session_stop_event(&s, &ev);
			if (s.closing) {
				gdb_session_detach(&s);
				gdb_session_attach(&s);
			}
			i += 3;
		}
	}
	gdb_session_detach(&s);
out_session:
	gdb_session_destroy(&s);
out_target:
	pthread_mutex_destroy(&t.lock);
	return 0;
}
