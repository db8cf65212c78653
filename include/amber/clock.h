/* Monotonic time in nanoseconds (CLOCK_MONOTONIC), for intervals and deadlines. */
#ifndef AMBER_CLOCK_H
#define AMBER_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
