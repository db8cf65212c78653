/* Block backend tests on temp files: I/O, zeroing, polling and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "amber/block.h"
#include "amber/evloop.h"

struct done {
	int calls;
	int ret;
	pthread_t thread;
};

/* Each test request carries its own completion record right after it. */
struct treq {
	struct block_req req;
	struct done done;
};

static void treq_done(struct block_req *req, int ret)
{
	struct treq *t = (struct treq *)req;

	t->done.calls++;
	t->done.ret = ret;
	t->done.thread = pthread_self();
}

static void make_file(char *path, size_t len, off_t size)
{
	int fd;

	snprintf(path, len, "/tmp/amber-block-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static struct block_dev *open_file(const char *path, unsigned flags)
{
	struct block_dev *b = NULL;
	char err[256];

	assert_int_equal(block_open(&b, path, flags, 512, NULL, err, sizeof(err)), 0);
	return b;
}

static void run(struct block_dev *b, struct treq *t)
{
	t->req.done = treq_done;
	t->done.calls = 0;
	assert_int_equal(block_submit(b, &t->req), 0);
	block_drain(b);
	assert_int_equal(t->done.calls, 1);
}

static void test_open_refuses_size_not_multiple_of_block(void **state)
{
	char path[64], err[256];
	struct block_dev *b = NULL;

	make_file(path, sizeof(path), 1000);
	assert_int_equal(block_open(&b, path, 0, 512, NULL, err, sizeof(err)), -EINVAL);
	assert_null(b);
	assert_non_null(strstr(err, path));
	assert_int_equal(block_open(&b, "/nonexistent/x.img", 0, 512, NULL, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x.img"));
	unlink(path);
}

static void test_vectored_write_then_read(void **state)
{
	char path[64];
	struct block_dev *b;
	uint8_t a[1024], c[512], r1[700], r2[836];
	struct iovec wv[2] = { { a, sizeof(a) }, { c, sizeof(c) } };
	struct iovec rv[2] = { { r1, sizeof(r1) }, { r2, sizeof(r2) } };
	struct treq t = { 0 };

	make_file(path, sizeof(path), 1 << 20);
	b = open_file(path, 0);
	assert_int_equal(block_size(b), 1 << 20);
	memset(a, 0xab, sizeof(a));
	memset(c, 0xcd, sizeof(c));
	t.req = (struct block_req){ .op = BLOCK_OP_WRITE, .offset = 4096, .iov = wv, .iovcnt = 2 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	t.req = (struct block_req){ .op = BLOCK_OP_READ, .offset = 4096, .iov = rv, .iovcnt = 2 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	assert_memory_equal(r1, a, sizeof(r1));
	assert_memory_equal(r2, a + 700, 1024 - 700);
	assert_memory_equal(r2 + 1024 - 700, c, 512);
	t.req = (struct block_req){ .op = BLOCK_OP_FLUSH };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	/* beyond the end: refused at once, no callback */
	t.req = (struct block_req){ .op = BLOCK_OP_READ, .offset = (1 << 20) - 512, .iov = rv,
				    .iovcnt = 2, .done = treq_done };
	assert_int_equal(block_submit(b, &t.req), -EINVAL);
	block_close(b);
	unlink(path);
}

/*
 * O_DIRECT wants buffers and lengths aligned to the logical block size, but
 * NVMe PRP1 may start at any dword of a page (Linux sends user buffers as they
 * are): such requests must still complete with the right data.
 */
static void test_direct_io_with_unaligned_buffers_completes(void **state)
{
	char path[64];
	struct block_dev *b;
	uint8_t *mem = aligned_alloc(4096, 6 * 4096);
	struct iovec wv[2] = { { mem + 16, 4096 - 16 }, { mem + 4096, 4096 + 16 } };
	struct iovec rv[3] = { { mem + 3 * 4096 + 4, 100 }, { mem + 3 * 4096 + 200, 3000 },
			       { mem + 3 * 4096 + 3500, 8192 - 3100 } };
	uint8_t *back = malloc(8192);
	struct treq t = { 0 };
	int fd;

	assert_non_null(mem);
	assert_non_null(back);
	make_file(path, sizeof(path), 1 << 20);
	b = open_file(path, BLOCK_DIRECT);
	for (unsigned i = 0; i < 8192; i++)
		mem[16 + i] = (uint8_t)(i * 7 + 1);
	/* both directions, aligned file offset, misaligned memory and lengths */
	t.req = (struct block_req){ .op = BLOCK_OP_WRITE, .offset = 8192, .iov = wv, .iovcnt = 2 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	t.req = (struct block_req){ .op = BLOCK_OP_READ, .offset = 8192, .iov = rv, .iovcnt = 3 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	assert_memory_equal(rv[0].iov_base, mem + 16, 100);
	assert_memory_equal(rv[1].iov_base, mem + 16 + 100, 3000);
	assert_memory_equal(rv[2].iov_base, mem + 16 + 3100, 8192 - 3100);
	block_close(b);
	/* and the file holds it */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, 8192, 8192), 8192);
	assert_memory_equal(back, mem + 16, 8192);
	close(fd);
	free(back);
	free(mem);
	unlink(path);
}

static void test_read_only_refuses_writes(void **state)
{
	char path[64];
	struct block_dev *b;
	uint8_t buf[512];
	struct iovec v = { buf, sizeof(buf) };
	struct block_req r = { .op = BLOCK_OP_WRITE, .iov = &v, .iovcnt = 1, .done = treq_done };

	make_file(path, sizeof(path), 4096);
	b = open_file(path, BLOCK_RDONLY);
	assert_true(block_read_only(b));
	assert_int_equal(block_submit(b, &r), -EROFS);
	block_close(b);
	unlink(path);
}

static void test_discard_punches_and_write_zeroes_zeroes(void **state)
{
	char path[64];
	struct block_dev *b;
	static uint8_t data[1 << 20], back[1 << 20], zero[1 << 20];
	struct iovec v = { data, sizeof(data) }, rv = { back, sizeof(back) };
	struct treq t = { 0 };
	struct stat st;
	blkcnt_t full;

	make_file(path, sizeof(path), 2 << 20);
	b = open_file(path, 0);
	memset(data, 0x5a, sizeof(data));
	t.req = (struct block_req){ .op = BLOCK_OP_WRITE, .offset = 0, .iov = &v, .iovcnt = 1 };
	run(b, &t);
	t.req = (struct block_req){ .op = BLOCK_OP_FLUSH };
	run(b, &t);
	assert_int_equal(stat(path, &st), 0);
	full = st.st_blocks;
	assert_true(full >= 2048);
	t.req = (struct block_req){ .op = BLOCK_OP_DISCARD, .offset = 0, .len = 512 << 10 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_blocks + 1024 <= full);
	t.req = (struct block_req){ .op = BLOCK_OP_WRITE_ZEROES, .offset = 512 << 10,
				    .len = 4096 };
	run(b, &t);
	assert_int_equal(t.done.ret, 0);
	t.req = (struct block_req){ .op = BLOCK_OP_READ, .offset = 0, .iov = &rv, .iovcnt = 1 };
	run(b, &t);
	assert_memory_equal(back, zero, (512 << 10) + 4096);
	assert_memory_equal(back + (512 << 10) + 4096, data, (512 << 10) - 4096);
	block_close(b);
	unlink(path);
}

static void test_many_requests_beyond_ring_size_all_complete(void **state)
{
	char path[64];
	struct block_dev *b;
	enum { N = 700 };
	static struct treq t[N];
	static uint8_t buf[N][512];
	static struct iovec v[N];
	int done = 0;

	make_file(path, sizeof(path), N * 512);
	b = open_file(path, 0);
	block_plug(b);
	for (int i = 0; i < N; i++) {
		memset(buf[i], i & 0xff, 512);
		v[i] = (struct iovec){ buf[i], 512 };
		t[i].req = (struct block_req){ .op = BLOCK_OP_WRITE, .offset = 512ULL * i,
					       .iov = &v[i], .iovcnt = 1, .done = treq_done };
		t[i].done.calls = 0;
		assert_int_equal(block_submit(b, &t[i].req), 0);
	}
	block_unplug(b);
	assert_true(block_inflight(b) > 0);
	for (int k = 0; k < 100000 && done < N; k++)
		done += block_poll(b, true);
	assert_int_equal(done, N);
	for (int i = 0; i < N; i++) {
		uint8_t back[512];
		int fd = open(path, O_RDONLY);

		assert_int_equal(t[i].done.calls, 1);
		assert_int_equal(t[i].done.ret, 0);
		assert_int_equal(pread(fd, back, 512, 512 * i), 512);
		close(fd);
		assert_int_equal(back[0], i & 0xff);
	}
	block_close(b);
	unlink(path);
}

static void test_completions_run_on_the_event_loop_thread(void **state)
{
	char path[64], err[256];
	struct evloop *loop = evloop_new();
	struct block_dev *b = NULL;
	uint8_t buf[4096];
	struct iovec v = { buf, sizeof(buf) };
	struct treq t = { 0 };

	assert_non_null(loop);
	assert_int_equal(evloop_start_thread(loop), 0);
	make_file(path, sizeof(path), 1 << 16);
	assert_int_equal(block_open(&b, path, 0, 512, loop, err, sizeof(err)), 0);
	memset(buf, 7, sizeof(buf));
	t.req = (struct block_req){ .op = BLOCK_OP_WRITE, .offset = 0, .iov = &v, .iovcnt = 1,
				    .done = treq_done };
	assert_int_equal(block_submit(b, &t.req), 0);
	for (int i = 0; i < 5000 && block_inflight(b); i++)
		usleep(1000);
	assert_int_equal(block_inflight(b), 0);
	assert_int_equal(t.done.calls, 1);
	assert_int_equal(t.done.ret, 0);
	assert_false(pthread_equal(t.done.thread, pthread_self()));
	block_close(b);
	evloop_stop(loop);
	evloop_join(loop);
	evloop_free(loop);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_refuses_size_not_multiple_of_block),
		cmocka_unit_test(test_vectored_write_then_read),
		cmocka_unit_test(test_direct_io_with_unaligned_buffers_completes),
		cmocka_unit_test(test_read_only_refuses_writes),
		cmocka_unit_test(test_discard_punches_and_write_zeroes_zeroes),
		cmocka_unit_test(test_many_requests_beyond_ring_size_all_complete),
		cmocka_unit_test(test_completions_run_on_the_event_loop_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
