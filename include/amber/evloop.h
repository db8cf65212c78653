/*
 * The event-loop thread: epoll over fds (console input, control socket,
 * I/O completions, migration) and timers (timerfd). Callbacks run on the loop
 * thread. evloop_* calls are safe from any thread.
 */
#ifndef AMBER_EVLOOP_H
#define AMBER_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

struct evloop;

typedef void (*evloop_fd_cb)(void *opaque, int fd, uint32_t epoll_events);
typedef void (*evloop_fn)(void *opaque);

struct evloop *evloop_new(void);
void evloop_free(struct evloop *loop);
/* Watch fd for EPOLLIN/EPOLLOUT/... until evloop_del_fd. 0 or -errno. */
int evloop_add_fd(struct evloop *loop, int fd, uint32_t events, evloop_fd_cb cb, void *opaque);
int evloop_mod_fd(struct evloop *loop, int fd, uint32_t events);
int evloop_del_fd(struct evloop *loop, int fd);
/* Run fn on the loop thread soon (from any thread). */
int evloop_call(struct evloop *loop, evloop_fn fn, void *opaque);
/* One-shot or periodic timer; returns an id > 0 or -errno. */
int evloop_add_timer(struct evloop *loop, uint64_t first_ns, uint64_t period_ns, evloop_fn fn, void *opaque);
int evloop_del_timer(struct evloop *loop, int id);
/* Run on the calling thread until evloop_stop; or spawn a thread. */
int evloop_run(struct evloop *loop);
int evloop_start_thread(struct evloop *loop);
void evloop_stop(struct evloop *loop);
/* Wait for the loop thread started by evloop_start_thread to end. */
void evloop_join(struct evloop *loop);
bool evloop_on_loop_thread(struct evloop *loop);

#endif
