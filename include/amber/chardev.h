/*
 * Character backends: where a serial port's (or debug console's) bytes go
 * and where its input comes from.
 *
 * Specs:
 *   stdio         output to stdout, input from stdin (raw mode on a terminal,
 *                 restored on close, at exit and on fatal signals). On a
 *                 terminal, Ctrl-A x quits amber, Ctrl-A Ctrl-A sends a
 *                 literal Ctrl-A, Ctrl-A h prints this help. Only the first
 *                 stdio chardev reads stdin; later ones (e.g. the firmware
 *                 debug console next to the serial port) are output only.
 *   file:PATH     output only, PATH created or truncated
 *   append:PATH   output only, appended to PATH
 *   fd:IN:OUT     input from fd IN, output to fd OUT (either may be -1);
 *                 the fds are duplicated, the caller keeps its own
 *   none          output discarded, no input
 *
 * Input is read on the event-loop thread and handed to the receiver, which
 * returns how many bytes it took. When it takes fewer (a full UART FIFO), the
 * chardev keeps the rest, stops reading, and delivers the rest after the
 * receiver calls chardev_accept_input(c, true) (from any thread). So no input
 * is lost and the loop does not spin on a readable fd nobody drains.
 */
#ifndef AMBER_CHARDEV_H
#define AMBER_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct chardev;
struct evloop;

/* Returns how many of the len bytes the receiver accepted (0..len). */
typedef size_t (*chardev_rx_fn)(void *opaque, const uint8_t *buf, size_t len);

/*
 * Open a backend from its spec. loop may be NULL: then no input is read.
 * NULL on error, with a message naming the spec and the reason in err.
 */
struct chardev *chardev_open(const char *spec, struct evloop *loop, char *err, size_t errlen);
/* The fd:IN:OUT backend (fds duplicated); for tests and embedders. */
struct chardev *chardev_open_fd(int in_fd, int out_fd, struct evloop *loop,
				char *err, size_t errlen);
void chardev_close(struct chardev *c);

/*
 * Write the whole buffer: retries on EINTR and short writes, waits for a
 * slow reader, but never blocks forever: after CHARDEV_WRITE_TIMEOUT_MS
 * without progress the output is dropped (and counted, and logged once) until
 * the reader catches up. Returns len, or -errno (-ETIMEDOUT when dropped).
 */
#define CHARDEV_WRITE_TIMEOUT_MS 2000
ssize_t chardev_write(struct chardev *c, const void *buf, size_t len);

/* Set (or clear, rx == NULL) the receiver of input bytes. */
void chardev_set_receiver(struct chardev *c, chardev_rx_fn rx, void *opaque);
/*
 * Flow control: off stops reading input; on resumes it and delivers bytes
 * held back. Safe from any thread, also with the receiver's own lock held.
 */
void chardev_accept_input(struct chardev *c, bool on);
/*
 * Hand bytes to the receiver as if they had been read (escape handling
 * included), on the calling thread. For tests and for "send keys" commands.
 * Returns how many were accepted or held back for later delivery.
 */
size_t chardev_inject(struct chardev *c, const uint8_t *buf, size_t len);

/* Ctrl-A escapes (default on for stdio on a terminal). */
void chardev_set_escape(struct chardev *c, bool on);
/*
 * What Ctrl-A x does: call quit(opaque) (on the loop thread). Without a
 * handler the terminal is restored and SIGTERM is raised.
 */
void chardev_set_quit_handler(struct chardev *c, void (*quit)(void *opaque), void *opaque);

/* Counters, for messages and tests. */
uint64_t chardev_dropped_bytes(const struct chardev *c);

/*
 * Put the terminal back as it was before stdio raw mode. Async-signal-safe:
 * callable from signal handlers; a no-op when no terminal was changed.
 */
void chardev_restore_terminal(void);

#endif
