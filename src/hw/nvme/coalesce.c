/*
 * Interrupt coalescing for I/O completion queues under MSI-X.
 *
 * Every interrupt costs the guest an exit, and under nested virtualization an
 * emulated IPI too. When the host keeps many commands in flight, answering
 * each burst of completions with its own message makes the guest spend its
 * CPU on interrupts instead of submitting. A vector that fired less than its
 * window ago therefore waits (a timerfd on the event loop) and its next
 * message carries everything posted meanwhile; a vector that has been quiet
 * for a window fires at once: a completion after a quiet spell is never delayed.
 *
 * The window of each vector:
 * - 0 for the admin queue, and for a vector whose Interrupt Vector
 *   Configuration has Coalescing Disable set (§5.21.1.9);
 * - the host's own Interrupt Coalescing feature (§5.21.1.8) when it set one:
 *   TIME in 100 µs units, and a vector with THR + 1 entries waiting fires;
 * - else AMBER_NVME_COALESCE: "off", a fixed window in microseconds, or
 *   "adaptive" (default). Adaptive tunes each vector by measuring, the way
 *   Linux's net_dim moderates network interrupts: every NVME_DIM_EPOCH
 *   messages it compares the completion rate with that of the previous
 *   window size and moves towards the faster one. A window that delayed
 *   (almost) nothing changes nothing and is passed over. A window during
 *   which the host mostly submitted nothing held completions back from an
 *   idle host: unless the rate moved with it, the walk shrinks it at once. Where waiting costs throughput
 *   the walk comes back to 0 and parks there until the load changes. (How
 *   many entries the host has in flight cannot be told from here: a guest
 *   submitting one command per doorbell to a disk that completes at once
 *   looks the same at queue depth 1 and 32; the idle-wait rule tells them
 *   apart after the fact.)
 * While a vector holds a message back, the host need not ring the doorbells
 * of the SQs completing to it (their shadow EventIdx asks for no ring, queue.c):
 * when the timer fires it first fetches those SQs, so what the host queued
 * meanwhile is started, and (on backends that finish at once) completed in
 * the same message. Each ring it saves is an exit with an emulated instruction.
 * A held-back message whose entries the host has meanwhile consumed (its
 * handler, still running, read them) is not sent at all.
 * The deferred messages are sent before a checkpoint reads any state
 * (nvme_quiesce), so the coalescing state is not part of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "amber/clock.h"
#include "amber/evloop.h"
#include "amber/log.h"
#include "nvme.h"

/* Adaptive window sizes, µs; up to about a millisecond of added latency. */
static const uint32_t nvme_dim_us[NVME_DIM_LEVELS] = { 0, 16, 32, 64, 128, 256, 512, 1024 };

/* ---- the adaptive walk (pure: unit-tested on its own) ------------------------- */

static int nvme_dim_cmp(uint64_t now, uint64_t before)
{
	/* ±10 %: closer than that is noise */
	if (now * 10 > before * 11)
		return 1;
	if (now * 11 < before * 10)
		return -1;
	return 0;
}

static void nvme_dim_move(struct nvme_dim *d)
{
	int next = (int)d->level + d->dir;

	if (next < 0 || next >= NVME_DIM_LEVELS) {
		d->parked = true;	/* at an end: nothing further that way */
		return;
	}
	d->level = (uint8_t)next;
}

/*
 * One epoch ended with cpl_rate completions per second, after irqs messages of
 * which deferred waited for the window, starved of them while the host
 * submitted nothing. Returns the level to use next.
 */
unsigned nvme_dim_epoch(struct nvme_dim *d, uint64_t cpl_rate, unsigned irqs, unsigned deferred,
			unsigned starved)
{
	bool binding = deferred * 20 >= irqs;	/* the window delayed >= 5 % of them */
	bool idle_waits = binding && starved * 2 > deferred;
	int vs = nvme_dim_cmp(cpl_rate, d->prev_rate);
	bool had_prev = d->have_prev;

	d->have_prev = true;
	d->prev_rate = cpl_rate;
	if (d->dir == 0)
		d->dir = 1;
	if (d->parked && d->hold)
		d->hold--;
	if (idle_waits && (!had_prev || vs == 0) && !(d->parked && d->hold)) {
		/*
		 * The host waited for us rather than working meanwhile, and the
		 * rate shows no gain: smaller. (Where an interrupt costs more than
		 * the wait, as nested, fewer interrupts pay even for an idle host:
		 * the rate rises, and the walk below follows it.)
		 */
		d->parked = false;
		d->reversed = false;
		d->dir = -1;
		nvme_dim_move(d);
	} else if (d->parked) {
		int moved = nvme_dim_cmp(cpl_rate, d->park_rate);

		if (moved == 0)
			return d->level;
		/* The load changed: a heavier one may gather more, a lighter one less. */
		d->parked = false;
		d->reversed = false;
		d->dir = moved > 0 ? 1 : -1;
		nvme_dim_move(d);
	} else if (!binding && d->dir > 0) {
		/* a window that delays nothing costs nothing: look further */
		nvme_dim_move(d);
	} else if (!had_prev || vs > 0) {
		if (d->reversed) {
			d->parked = true;	/* back where it was better: stay a while */
			d->hold = NVME_DIM_HOLD;
		} else {
			nvme_dim_move(d);
		}
	} else if (vs < 0) {
		d->dir = (int8_t)-d->dir;
		d->reversed = true;
		nvme_dim_move(d);
	} else {
		d->parked = true;
	}
	if (d->parked)
		d->park_rate = cpl_rate;
	return d->level;
}

/* ---- per-vector windows and the timer ------------------------------------------ */

static bool nvme_coal_host_set(const struct nvme_ctrl *c)
{
	return c->r.irq_coalesce != 0;
}

static uint64_t nvme_coal_window(const struct nvme_ctrl *c, unsigned v)
{
	if (v == 0 || v >= NVME_NVEC || (c->r.irq_config[v] & (1u << 16)))
		return 0;
	if (nvme_coal_host_set(c))
		return (uint64_t)((c->r.irq_coalesce >> 8) & 0xff) * 100000ULL;
	switch (c->coal.mode) {
	case NVME_COAL_FIXED:
		return c->coal.fixed_ns;
	case NVME_COAL_ADAPTIVE:
		return (uint64_t)nvme_dim_us[c->coal.v[v].dim.level] * 1000ULL;
	default:
		return 0;
	}
}

/* Have the timer fire by at; false if it cannot be set. */
static bool nvme_coal_arm(struct nvme_ctrl *c, uint64_t at)
{
	struct itimerspec its = { 0 };

	if (c->coal.fd < 0)
		return false;
	if (c->coal.deadline && c->coal.deadline <= at)
		return true;
	its.it_value.tv_sec = (time_t)(at / 1000000000ULL);
	its.it_value.tv_nsec = (long)(at % 1000000000ULL);
	if (timerfd_settime(c->coal.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		log_warn("nvme", "%s: coalescing timer: %s", c->dev->id, strerror(errno));
		return false;
	}
	c->coal.deadline = at;
	return true;
}

/* Vector v fires now: account the epoch of its adaptive walk. */
static void nvme_coal_sent(struct nvme_ctrl *c, unsigned v, uint64_t now, bool waited)
{
	struct nvme_coal_vec *cv = &c->coal.v[v];
	uint64_t span;

	cv->last = now;
	cv->epoch_cpls += cv->pending;
	cv->pending = 0;
	cv->epoch_irqs++;
	cv->epoch_deferred += waited;
	cv->epoch_starved += waited && c->coal.fetched == cv->wait_fetched;
	if (c->coal.mode != NVME_COAL_ADAPTIVE || cv->epoch_irqs < NVME_DIM_EPOCH)
		return;
	span = now - cv->epoch_start;
	if (cv->epoch_start && span > 0 && span < 1000000000ULL) {
		uint64_t rate = cv->epoch_cpls * 1000000000ULL / span;
		unsigned was = cv->dim.level;

		nvme_dim_epoch(&cv->dim, rate, cv->epoch_irqs, cv->epoch_deferred,
			       cv->epoch_starved);
		log_debug("nvme", "%s: vector %u: %llu completions/s, %llu in %u interrupts, %u of which "
			  "waited (%u with the host idle, %u more not needed) in a %u us window; "
			  "next %u us%s", c->dev->id, v, (unsigned long long)rate,
			  (unsigned long long)cv->epoch_cpls, cv->epoch_irqs, cv->epoch_deferred,
			  cv->epoch_starved, cv->epoch_dropped, nvme_dim_us[was],
			  nvme_dim_us[cv->dim.level], cv->dim.parked ? " (parked)" : "");
	} else {
		cv->dim.have_prev = false;	/* idle for long: nothing to compare with */
	}
	cv->epoch_start = now;
	cv->epoch_irqs = cv->epoch_deferred = cv->epoch_starved = cv->epoch_dropped = 0;
	cv->epoch_cpls = 0;
}

/* Vector v's deferred message found its entries consumed: none is sent. */
static void nvme_coal_dropped(struct nvme_ctrl *c, unsigned v)
{
	struct nvme_coal_vec *cv = &c->coal.v[v];

	cv->epoch_cpls += cv->pending;
	cv->pending = 0;
	cv->epoch_dropped++;
	c->coal.dropped++;
}

static void nvme_coal_send(struct nvme_ctrl *c, unsigned v, bool sync)
{
	/* KVM_SIGNAL_MSI is synchronous: a checkpoint reads the LAPIC next */
	if (sync || !nvme_fast_notify(c, v))
		pci_msix_notify(&c->pci, v);
}

/* A CQ with interrupts enabled got an entry for vector v. */
void nvme_coal_posted(struct nvme_ctrl *c, unsigned v)
{
	if (v < NVME_NVEC)
		c->coal.v[v].pending++;
}

/* Vector v has news: send it now, or leave it to the timer. */
void nvme_coal_vector(struct nvme_ctrl *c, unsigned v, uint64_t now)
{
	struct nvme_coal_vec *cv = &c->coal.v[v];
	uint64_t bit = 1ULL << (v % 64), win = nvme_coal_window(c, v);
	unsigned thr = nvme_coal_host_set(c) ? (c->r.irq_coalesce & 0xff) + 1u : 0;
	bool waited = c->coal.deferred[v / 64] & bit;

	if (win && c->coal.fd >= 0 && now < cv->last + win && !(thr && cv->pending >= thr)) {
		if (!waited)
			cv->wait_fetched = c->coal.fetched;
		c->coal.deferred[v / 64] |= bit;
		if (nvme_coal_arm(c, cv->last + win) && !(c->coal.muted[v / 64] & bit)) {
			/* until the timer, the host need not ring (queue.c) */
			c->coal.muted[v / 64] |= bit;
			nvme_sqs_mute(c, v);
		}
		return;
	}
	c->coal.deferred[v / 64] &= ~bit;
	nvme_coal_sent(c, v, now, waited);
	nvme_coal_send(c, v, false);
}

/*
 * Has the host consumed every entry of vector v's completion queues already?
 * Its handler, still running from the previous message, reads entries posted
 * meanwhile, and a message for them would find nothing: a wasted interrupt
 * (nested, an emulated IPI as well). The host writes a CQ head (the shadow
 * doorbell or the MMIO one) only after it has read the entries before it.
 */
static bool nvme_coal_consumed(struct nvme_ctrl *c, unsigned v)
{
	bool any = false;

	for (unsigned q = 1; q < NVME_NQ; q++) {
		const struct nvme_cq *cq = &c->cq[q];

		if (!cq->valid || !cq->ien || cq->vector != v)
			continue;
		if (!nvme_cq_consumed(c, (uint16_t)q))
			return false;
		any = true;
	}
	return any;
}

/*
 * Send the deferred vectors whose window has passed, or all of them (force);
 * one whose entries the host has consumed meanwhile needs no message.
 */
void nvme_coal_flush(struct nvme_ctrl *c, bool force)
{
	uint64_t now = mono_ns();

	if (force)	/* quiesced: resume fetches every SQ and unmutes them */
		c->coal.muted[0] = c->coal.muted[1] = 0;

	for (unsigned w = 0; w < 2; w++) {
		uint64_t bits = c->coal.deferred[w];

		while (bits) {
			unsigned v = w * 64 + (unsigned)__builtin_ctzll(bits);
			uint64_t due = c->coal.v[v].last + nvme_coal_window(c, v);

			bits &= bits - 1;
			if (!force && now < due) {
				nvme_coal_arm(c, due);
				continue;
			}
			c->coal.deferred[w] &= ~(1ULL << (v % 64));
			if (nvme_coal_consumed(c, v)) {
				nvme_coal_dropped(c, v);
				continue;
			}
			nvme_coal_sent(c, v, now, true);
			if (pci_msix_enabled(&c->pci))
				nvme_coal_send(c, v, force);
		}
	}
}

/* Controller reset: nothing deferred survives it. */
void nvme_coal_reset(struct nvme_ctrl *c)
{
	c->coal.deferred[0] = c->coal.deferred[1] = 0;
	c->coal.muted[0] = c->coal.muted[1] = 0;
	for (unsigned v = 0; v < NVME_NVEC; v++)
		c->coal.v[v].pending = 0;
}

/* Are the SQs of vector v muted, their doorbells left to the timer? */
bool nvme_coal_muted(const struct nvme_ctrl *c, unsigned v)
{
	return v < NVME_NVEC && (c->coal.muted[v / 64] & (1ULL << (v % 64)));
}

/*
 * The timer fired: unmute the vectors it is due for (their window passed, or
 * they sent meanwhile) into fetch; the others wait for their own time.
 */
static void nvme_coal_due(struct nvme_ctrl *c, uint64_t now, uint64_t *fetch)
{
	for (unsigned w = 0; w < 2; w++) {
		uint64_t bits = c->coal.muted[w];

		fetch[w] = 0;
		while (bits) {
			unsigned v = w * 64 + (unsigned)__builtin_ctzll(bits);
			uint64_t bit = 1ULL << (v % 64);
			uint64_t due = c->coal.v[v].last + nvme_coal_window(c, v);

			bits &= bits - 1;
			if ((c->coal.deferred[w] & bit) && now < due) {
				nvme_coal_arm(c, due);
				continue;
			}
			c->coal.muted[w] &= ~bit;
			fetch[w] |= bit;
		}
	}
}

uint64_t nvme_coal_now(const struct nvme_ctrl *c)
{
	return c->coal.fd >= 0 ? mono_ns() : 0;
}

static void nvme_coal_fire(void *opaque, int fd, uint32_t events)
{
	struct nvme_ctrl *c = opaque;
	uint64_t n, fetch[2];
	bool fetched;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("nvme", "%s: coalescing timer: %s", c->dev->id, strerror(errno));
	pthread_mutex_lock(&c->lock);
	c->coal.deadline = 0;
	/* first what the host queued without ringing, so it rides this message */
	nvme_coal_due(c, mono_ns(), fetch);
	fetched = nvme_sqs_fetch(c, fetch);
	pthread_mutex_unlock(&c->lock);
	if (fetched)
		nvme_poll_inline(c);	/* its completions, where the backend had them at once */
	pthread_mutex_lock(&c->lock);
	nvme_coal_flush(c, false);
	pthread_mutex_unlock(&c->lock);
}

/* AMBER_NVME_COALESCE=off|adaptive|MICROSECONDS; without an event loop: off. */
int nvme_coal_init(struct nvme_ctrl *c)
{
	const char *env = getenv("AMBER_NVME_COALESCE");
	char *end;

	c->coal.fd = -1;
	c->coal.mode = NVME_COAL_ADAPTIVE;
	if (env && !strcmp(env, "off")) {
		c->coal.mode = NVME_COAL_OFF;
	} else if (env && strcmp(env, "adaptive") != 0) {
		unsigned long long us;

		errno = 0;
		us = strtoull(env, &end, 10);
		if (errno || end == env || *end || *env == '-' || us > 1000000) {
			log_error("nvme", "%s: AMBER_NVME_COALESCE=%s: expected off, adaptive or a "
				  "window in microseconds (0 to 1000000)", c->dev->id, env);
			return -EINVAL;
		}
		c->coal.mode = us ? NVME_COAL_FIXED : NVME_COAL_OFF;
		c->coal.fixed_ns = us * 1000ULL;
	}
	if (!c->m->loop)
		return 0;
	c->coal.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->coal.fd < 0 || evloop_add_fd(c->m->loop, c->coal.fd, EPOLLIN, nvme_coal_fire, c) < 0) {
		log_warn("nvme", "%s: no timer for interrupt coalescing: every completion "
			 "interrupts at once", c->dev->id);
		if (c->coal.fd >= 0)
			close(c->coal.fd);
		c->coal.fd = -1;
	}
	return 0;
}

void nvme_coal_free(struct nvme_ctrl *c)
{
	if (c->coal.fd < 0)
		return;
	evloop_del_fd(c->m->loop, c->coal.fd);
	close(c->coal.fd);
	c->coal.fd = -1;
}
