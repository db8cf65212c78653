/*
 * The event loop: one epoll instance; fd watches, timers (one timerfd each)
 * and cross-thread calls (a queue plus an eventfd that wakes epoll_wait).
 *
 * Any thread may add, modify or delete watches. Callbacks run on the loop
 * thread without the loop lock held, so they may call evloop_* themselves.
 * A deleted watch is marked dead and freed only after the current batch of
 * epoll events has been dispatched, so an event already returned by
 * epoll_wait for it is skipped rather than run on freed memory. A delete
 * from another thread also waits for a callback of that watch that is
 * running at that moment, so after evloop_del_fd returns (on any thread) the
 * callback is not running and will not run again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "amber/evloop.h"
#include "amber/log.h"

#define EVLOOP_MAX_EVENTS 64

struct evloop_watch {
	struct evloop_watch *next;	/* live list, then zombie list */
	int fd;
	uint32_t events;
	bool dead;
	evloop_fd_cb cb;
	void *opaque;
};

struct evloop_timer {
	struct evloop_timer *next;
	struct evloop *loop;
	int id;
	int fd;
	bool periodic;
	evloop_fn fn;
	void *opaque;
};

struct evloop_callq {
	struct evloop_callq *next;
	evloop_fn fn;
	void *opaque;
};

struct evloop {
	int epfd;
	int wakefd;			/* eventfd: calls queued or stop requested */
	pthread_mutex_t lock;
	pthread_cond_t cb_done;		/* signalled when a callback returns */
	struct evloop_watch *watches;
	struct evloop_watch *zombies;
	struct evloop_watch *running_watch;	/* callback in progress */
	struct evloop_timer *timers;
	int next_timer_id;
	struct evloop_callq *calls_head, **calls_tail;
	bool stop;
	bool running;
	pthread_t loop_tid;		/* valid while running */
	bool thread_started;
	pthread_t thread;
};

static void evloop_wake(struct evloop *loop)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(loop->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("evloop", "cannot wake the event loop: %s", strerror(errno));
}

static struct evloop_watch *evloop_find_watch(struct evloop *loop, int fd)
{
	struct evloop_watch *w;

	for (w = loop->watches; w; w = w->next)
		if (w->fd == fd)
			return w;
	return NULL;
}

struct evloop *evloop_new(void)
{
	struct evloop *loop = calloc(1, sizeof(*loop));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto fail_free;
	loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wakefd < 0)
		goto fail_ep;
	/* data.ptr == NULL marks the wake eventfd in the dispatch loop. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
		goto fail_wake;
	pthread_mutex_init(&loop->lock, NULL);
	pthread_cond_init(&loop->cb_done, NULL);
	loop->calls_tail = &loop->calls_head;
	loop->next_timer_id = 1;
	return loop;

fail_wake:
	close(loop->wakefd);
fail_ep:
	close(loop->epfd);
fail_free:
	free(loop);
	return NULL;
}

static void evloop_free_zombies(struct evloop *loop)
{
	struct evloop_watch *w;

	pthread_mutex_lock(&loop->lock);
	while ((w = loop->zombies)) {
		loop->zombies = w->next;
		free(w);
	}
	pthread_mutex_unlock(&loop->lock);
}

void evloop_free(struct evloop *loop)
{
	struct evloop_watch *w;
	struct evloop_timer *t;
	struct evloop_callq *c;

	if (!loop)
		return;
	if (loop->thread_started) {
		evloop_stop(loop);
		evloop_join(loop);
	}
	while ((t = loop->timers)) {
		loop->timers = t->next;
		close(t->fd);
		free(t);
	}
	/* Watches on the caller's fds: the fds stay open, they are not ours. */
	while ((w = loop->watches)) {
		loop->watches = w->next;
		free(w);
	}
	evloop_free_zombies(loop);
	/* Calls never run: their owners are being torn down with the loop. */
	while ((c = loop->calls_head)) {
		loop->calls_head = c->next;
		free(c);
	}
	close(loop->wakefd);
	close(loop->epfd);
	pthread_cond_destroy(&loop->cb_done);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

int evloop_add_fd(struct evloop *loop, int fd, uint32_t events, evloop_fd_cb cb, void *opaque)
{
	struct evloop_watch *w;
	struct epoll_event ev;
	int ret = 0;

	if (fd < 0 || !cb)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->opaque = opaque;
	ev.events = events;
	ev.data.ptr = w;
	pthread_mutex_lock(&loop->lock);
	if (evloop_find_watch(loop, fd)) {
		ret = -EEXIST;
		goto out;
	}
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
		goto out;
	}
	w->next = loop->watches;
	loop->watches = w;
	w = NULL;
out:
	pthread_mutex_unlock(&loop->lock);
	free(w);
	return ret;
}

int evloop_mod_fd(struct evloop *loop, int fd, uint32_t events)
{
	struct evloop_watch *w;
	struct epoll_event ev;
	int ret = 0;

	pthread_mutex_lock(&loop->lock);
	w = evloop_find_watch(loop, fd);
	if (!w) {
		ret = -ENOENT;
		goto out;
	}
	ev.events = events;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		ret = -errno;
		goto out;
	}
	w->events = events;
out:
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

static bool evloop_on_loop_thread_locked(struct evloop *loop)
{
	return loop->running && pthread_equal(loop->loop_tid, pthread_self());
}

int evloop_del_fd(struct evloop *loop, int fd)
{
	struct evloop_watch **pp, *w;
	int ret = 0;

	pthread_mutex_lock(&loop->lock);
	for (pp = &loop->watches; *pp && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	w = *pp;
	if (!w) {
		ret = -ENOENT;
		goto out;
	}
	*pp = w->next;
	/* The fd may already be closed by a careless caller; the watch goes anyway. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->dead = true;
	w->next = loop->zombies;
	loop->zombies = w;
	if (!evloop_on_loop_thread_locked(loop))
		while (loop->running_watch == w)
			pthread_cond_wait(&loop->cb_done, &loop->lock);
out:
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

int evloop_call(struct evloop *loop, evloop_fn fn, void *opaque)
{
	struct evloop_callq *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->fn = fn;
	c->opaque = opaque;
	pthread_mutex_lock(&loop->lock);
	*loop->calls_tail = c;
	loop->calls_tail = &c->next;
	pthread_mutex_unlock(&loop->lock);
	evloop_wake(loop);
	return 0;
}

static int evloop_timer_arm(int fd, uint64_t first_ns, uint64_t period_ns)
{
	struct itimerspec its;

	/* An all-zero it_value disarms a timerfd; "now" is the nearest we can do. */
	if (first_ns == 0)
		first_ns = 1;
	its.it_value.tv_sec = first_ns / 1000000000ull;
	its.it_value.tv_nsec = first_ns % 1000000000ull;
	its.it_interval.tv_sec = period_ns / 1000000000ull;
	its.it_interval.tv_nsec = period_ns % 1000000000ull;
	return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static struct evloop_timer *evloop_timer_unlink(struct evloop *loop, int id)
{
	struct evloop_timer **pp, *t;

	for (pp = &loop->timers; *pp && (*pp)->id != id; pp = &(*pp)->next)
		;
	t = *pp;
	if (t)
		*pp = t->next;
	return t;
}

static void evloop_timer_fire(void *opaque, int fd, uint32_t events)
{
	struct evloop_timer *t = opaque;
	struct evloop *loop = t->loop;
	evloop_fn fn = t->fn;
	void *fn_opaque = t->opaque;
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) < 0)
		return;		/* EAGAIN: re-armed or raced; nothing expired */
	if (!t->periodic) {
		/* One-shot: gone before fn runs, so fn may add a new timer freely. */
		pthread_mutex_lock(&loop->lock);
		t = evloop_timer_unlink(loop, t->id);
		pthread_mutex_unlock(&loop->lock);
		if (t) {
			evloop_del_fd(loop, t->fd);
			close(t->fd);
			free(t);
		}
	}
	fn(fn_opaque);
}

int evloop_add_timer(struct evloop *loop, uint64_t first_ns, uint64_t period_ns, evloop_fn fn, void *opaque)
{
	struct evloop_timer *t;
	int ret, id;

	if (!fn)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->periodic = period_ns != 0;
	t->fn = fn;
	t->opaque = opaque;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->fd < 0) {
		ret = -errno;
		goto fail_free;
	}
	pthread_mutex_lock(&loop->lock);
	t->id = id = loop->next_timer_id++;
	if (loop->next_timer_id <= 0)
		loop->next_timer_id = 1;
	t->next = loop->timers;
	loop->timers = t;
	pthread_mutex_unlock(&loop->lock);
	ret = evloop_add_fd(loop, t->fd, EPOLLIN, evloop_timer_fire, t);
	if (ret < 0)
		goto fail_unlink;
	ret = evloop_timer_arm(t->fd, first_ns, period_ns);
	if (ret < 0)
		goto fail_del;
	/* Armed: a one-shot timer may already have fired and freed t. */
	return id;

fail_del:
	evloop_del_fd(loop, t->fd);
fail_unlink:
	pthread_mutex_lock(&loop->lock);
	evloop_timer_unlink(loop, t->id);
	pthread_mutex_unlock(&loop->lock);
	close(t->fd);
fail_free:
	free(t);
	return ret;
}

int evloop_del_timer(struct evloop *loop, int id)
{
	struct evloop_timer *t;

	pthread_mutex_lock(&loop->lock);
	t = evloop_timer_unlink(loop, id);
	pthread_mutex_unlock(&loop->lock);
	if (!t)
		return -ENOENT;
	evloop_del_fd(loop, t->fd);
	close(t->fd);
	free(t);
	return 0;
}

static void evloop_run_calls(struct evloop *loop)
{
	struct evloop_callq *c, *next;
	uint64_t count;

	if (read(loop->wakefd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("evloop", "reading the wake eventfd: %s", strerror(errno));
	pthread_mutex_lock(&loop->lock);
	c = loop->calls_head;
	loop->calls_head = NULL;
	loop->calls_tail = &loop->calls_head;
	pthread_mutex_unlock(&loop->lock);
	/* Calls queued by these calls wait for the next wakeup: no starvation. */
	for (; c; c = next) {
		next = c->next;
		c->fn(c->opaque);
		free(c);
	}
}

static void evloop_dispatch(struct evloop *loop, struct evloop_watch *w, uint32_t revents)
{
	evloop_fd_cb cb;
	void *opaque;
	int fd;

	pthread_mutex_lock(&loop->lock);
	if (w->dead) {
		pthread_mutex_unlock(&loop->lock);
		return;
	}
	cb = w->cb;
	opaque = w->opaque;
	fd = w->fd;
	loop->running_watch = w;
	pthread_mutex_unlock(&loop->lock);

	cb(opaque, fd, revents);

	pthread_mutex_lock(&loop->lock);
	loop->running_watch = NULL;
	pthread_cond_broadcast(&loop->cb_done);
	pthread_mutex_unlock(&loop->lock);
}

int evloop_run(struct evloop *loop)
{
	struct epoll_event events[EVLOOP_MAX_EVENTS];
	int ret = 0;

	pthread_mutex_lock(&loop->lock);
	if (loop->running) {
		pthread_mutex_unlock(&loop->lock);
		return -EBUSY;
	}
	loop->running = true;
	loop->loop_tid = pthread_self();
	pthread_mutex_unlock(&loop->lock);

	for (;;) {
		bool stop;
		int n, i;

		pthread_mutex_lock(&loop->lock);
		stop = loop->stop;
		pthread_mutex_unlock(&loop->lock);
		if (stop)
			break;
		n = epoll_wait(loop->epfd, events, EVLOOP_MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			log_error("evloop", "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			if (!events[i].data.ptr)
				evloop_run_calls(loop);
			else
				evloop_dispatch(loop, events[i].data.ptr, events[i].events);
		}
		/* No event of this batch refers to a deleted watch any more. */
		evloop_free_zombies(loop);
	}

	pthread_mutex_lock(&loop->lock);
	loop->running = false;
	/* A later evloop_run starts afresh; a stop before it started is consumed here. */
	loop->stop = false;
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

static void *evloop_thread_main(void *opaque)
{
	evloop_run(opaque);
	return NULL;
}

int evloop_start_thread(struct evloop *loop)
{
	int ret;

	if (loop->thread_started)
		return -EBUSY;
	ret = pthread_create(&loop->thread, NULL, evloop_thread_main, loop);
	if (ret)
		return -ret;
	loop->thread_started = true;
	return 0;
}

void evloop_stop(struct evloop *loop)
{
	pthread_mutex_lock(&loop->lock);
	loop->stop = true;
	pthread_mutex_unlock(&loop->lock);
	evloop_wake(loop);
}

void evloop_join(struct evloop *loop)
{
	if (!loop->thread_started)
		return;
	pthread_join(loop->thread, NULL);
	loop->thread_started = false;
}

bool evloop_on_loop_thread(struct evloop *loop)
{
	bool ret;

	pthread_mutex_lock(&loop->lock);
	ret = evloop_on_loop_thread_locked(loop);
	pthread_mutex_unlock(&loop->lock);
	return ret;
}
