/*
 * memfill: the guest side of the checkpoint tests (scenario "memcheck").
 *
 * Fills a large anonymous region with a pattern derived from a seed, then, on
 * every CPU, keeps verifying its share of the region and rewriting part of it,
 * and prints one progress line a second. A checkpoint taken at any moment can
 * be checked after restore: the pattern of a block is a function of (seed,
 * block, generation) and each block carries its generation in its first word,
 * so the region is self-describing whatever the moment of the capture. Each
 * block is written and verified only by its owner thread, so a capture in the
 * middle of a rewrite is finished by the same thread after restore before it
 * verifies that block again.
 *
 *   memfill [-m MiB] [-s SEED] [-t THREADS] [-i ROUND_PAUSE_MS] [-p PRINT_MS]
 *           [-x STOPFILE] [-d SECONDS]
 *
 * Lines (short: every console byte is a VM exit):
 *   MEMCHECK START mb=M seed=S threads=T
 *   MEMCHECK FILLED blocks=N used_kb=K total_kb=T   (RAM in use: total - free; total)
 *   MEMCHECK OK n=SEQ t=UNIXTIME r0=ROUNDS c0=CPU r1=ROUNDS c1=CPU ...
 *     SEQ counts printed lines (continues across a checkpoint/restore: no
 *     restart); rK is thread K's completed verification rounds, cK the CPU it
 *     last ran on (thread K is pinned to CPU K); t is the guest's wall clock.
 *   MEMCHECK FAIL block=B word=W gen=G got=X want=Y     (exit 1)
 *   MEMCHECK DONE n=SEQ rounds=SUM                      (STOPFILE appeared or -d expired)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_BYTES (64u * 1024u)
#define BLOCK_WORDS (BLOCK_BYTES / 8u)
#define MAX_THREADS 64
#define BLOCK_MAGIC 0x4d454d434845434bULL	/* "MEMCHECK" */

static uint64_t *region;
static uint64_t nblocks, seed;
static unsigned nthreads = 2, pause_ms = 200;
static volatile int stop, failed;

struct worker {
	pthread_t th;
	unsigned id;
	volatile uint64_t rounds;
	volatile int cpu;
	char pad[64];
};
static struct worker workers[MAX_THREADS];

/* splitmix64 finaliser: cheap, and every bit of the input changes the output */
static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/*
 * Word w of a block: base + w * step, base and step drawn from (seed, block,
 * generation). Every word differs from its neighbours and from the same word
 * of other blocks and generations, and checking it costs an add and a compare
 * (the nested test machine emulates every instruction of this guest).
 */
static inline void pattern_params(uint64_t blk, uint64_t gen, uint64_t *base, uint64_t *step)
{
	*base = mix(seed ^ (blk << 20) ^ (gen << 44));
	*step = mix(~seed ^ (blk << 24) ^ gen) | 1;	/* odd: w * step never repeats */
}

static void block_write(uint64_t blk, uint64_t gen)
{
	uint64_t *b = region + blk * BLOCK_WORDS, base, step, v;

	pattern_params(blk, gen, &base, &step);
	v = base + 2 * step;
	for (uint64_t w = 2; w < BLOCK_WORDS; w++, v += step)
		b[w] = v;
	b[1] = BLOCK_MAGIC ^ blk;
	__atomic_store_n(&b[0], gen, __ATOMIC_RELEASE);
}

static int block_verify(uint64_t blk)
{
	uint64_t *b = region + blk * BLOCK_WORDS, gen = b[0], base, step, v;

	if (b[1] != (BLOCK_MAGIC ^ blk)) {
		printf("MEMCHECK FAIL block=%llu word=1 gen=%llu got=%016llx want=%016llx\n",
		       (unsigned long long)blk, (unsigned long long)gen, (unsigned long long)b[1],
		       (unsigned long long)(BLOCK_MAGIC ^ blk));
		return -1;
	}
	pattern_params(blk, gen, &base, &step);
	v = base + 2 * step;
	for (uint64_t w = 2; w < BLOCK_WORDS; w++, v += step) {
		uint64_t want = v;

		if (b[w] != want) {
			printf("MEMCHECK FAIL block=%llu word=%llu gen=%llu got=%016llx want=%016llx\n",
			       (unsigned long long)blk, (unsigned long long)w,
			       (unsigned long long)gen, (unsigned long long)b[w],
			       (unsigned long long)want);
			return -1;
		}
	}
	return 0;
}

static void pin(unsigned cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);	/* best effort: fewer CPUs than threads */
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	uint64_t next = me->id;	/* the next of my blocks to rewrite */

	pin(me->id);
	for (uint64_t blk = me->id; blk < nblocks; blk += nthreads)
		block_write(blk, 0);
	__atomic_fetch_add(&me->rounds, 1, __ATOMIC_RELAXED);	/* round 1: the fill */
	while (!stop && !failed) {
		for (uint64_t blk = me->id; blk < nblocks; blk += nthreads) {
			if (block_verify(blk) < 0) {
				failed = 1;
				return NULL;
			}
		}
		/* Rewrite 1/16 of my blocks with the next generation. */
		for (uint64_t k = 0; k < nblocks / nthreads / 16 + 1; k++) {
			uint64_t *b = region + next * BLOCK_WORDS;

			block_write(next, b[0] + 1);
			next += nthreads;
			if (next >= nblocks)
				next = me->id;
		}
		me->cpu = sched_getcpu();
		__atomic_fetch_add(&me->rounds, 1, __ATOMIC_RELAXED);
		if (pause_ms)
			sleep_ms(pause_ms);
	}
	return NULL;
}

static void print_line(const char *tag, uint64_t seq)
{
	char buf[64 + MAX_THREADS * 32];
	int n = snprintf(buf, sizeof(buf), "MEMCHECK %s n=%llu t=%lld", tag,
			 (unsigned long long)seq, (long long)time(NULL));

	for (unsigned i = 0; i < nthreads && n < (int)sizeof(buf) - 40; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, " r%u=%llu c%u=%d", i,
			      (unsigned long long)workers[i].rounds, i, workers[i].cpu);
	puts(buf);
}

int main(int argc, char **argv)
{
	unsigned long mb = 200, print_ms = 1000, secs = 0;
	const char *stopfile = NULL;
	uint64_t seq = 0, ms = 0, all = 0;
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	seed = 1;
	while ((opt = getopt(argc, argv, "m:s:t:i:p:x:d:")) != -1) {
		switch (opt) {
		case 'm': mb = strtoul(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'i': pause_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'p': print_ms = strtoul(optarg, NULL, 0); break;
		case 'x': stopfile = optarg; break;
		case 'd': secs = strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: memfill [-m MiB] [-s SEED] [-t THREADS] [-i MS] "
				"[-p MS] [-x STOPFILE] [-d SECONDS]\n");
			return 2;
		}
	}
	if (nthreads == 0)
		nthreads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads < 1 || nthreads > MAX_THREADS || mb < 1 || print_ms < 10) {
		fprintf(stderr, "memfill: bad arguments\n");
		return 2;
	}
	nblocks = ((uint64_t)mb << 20) / BLOCK_BYTES;
	region = mmap(NULL, nblocks * BLOCK_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (region == MAP_FAILED) {
		printf("MEMCHECK FAIL mmap %lu MiB: %s\n", mb, strerror(errno));
		return 1;
	}
	printf("MEMCHECK START mb=%lu seed=%llu threads=%u\n", mb, (unsigned long long)seed,
	       nthreads);
	for (unsigned i = 0; i < nthreads; i++) {
		workers[i].id = i;
		workers[i].cpu = -1;
		if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0) {
			printf("MEMCHECK FAIL pthread_create\n");
			return 1;
		}
	}
	for (;;) {	/* the fill is every worker's first round */
		unsigned done = 0;

		for (unsigned i = 0; i < nthreads; i++)
			done += workers[i].rounds > 0;
		if (done == nthreads || failed)
			break;
		sleep_ms(20);
	}
	{
		struct sysinfo si;
		unsigned long long used = 0, total = 0;

		if (sysinfo(&si) == 0) {
			used = (unsigned long long)(si.totalram - si.freeram) * si.mem_unit >> 10;
			total = (unsigned long long)si.totalram * si.mem_unit >> 10;
		}
		printf("MEMCHECK FILLED blocks=%llu used_kb=%llu total_kb=%llu\n",
		       (unsigned long long)nblocks, used, total);
	}
	while (!failed) {
		sleep_ms(100);
		ms += 100;
		if (ms % print_ms == 0)
			print_line("OK", ++seq);
		if (stopfile && access(stopfile, F_OK) == 0)
			break;
		if (secs && ms >= secs * 1000)
			break;
	}
	stop = 1;
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(workers[i].th, NULL);
		all += workers[i].rounds;
	}
	if (failed)
		return 1;
	/* One last full pass by this thread over everything. */
	for (uint64_t blk = 0; blk < nblocks; blk++)
		if (block_verify(blk) < 0)
			return 1;
	printf("MEMCHECK DONE n=%llu rounds=%llu\n", (unsigned long long)seq,
	       (unsigned long long)all);
	return 0;
}
