/*
 * Character backends (stdio, file:, append:, fd:, none) for the serial port
 * and the firmware debug console. See include/amber/chardev.h for the specs.
 *
 * Threads: chardev_write runs on vCPU threads (a THR write), input is read on
 * the event-loop thread. Locks, in the order they may nest:
 *   deliver_lock  held while the receiver runs (the receiver then takes its
 *                 own device lock)
 *   write_lock    held while writing output (the device lock is held by the
 *                 caller)
 * chardev_accept_input takes no lock at all (atomics and an eventfd), because
 * the receiver calls it with its device lock held and a lock here would
 * invert the order above.
 *
 * File descriptors are never switched to O_NONBLOCK in place: that flag
 * belongs to the open file description, which stdin/stdout share with the
 * shell that started amber. Pipes and terminals are reopened through
 * /proc/self/fd (a new description), sockets use MSG_DONTWAIT, regular files
 * never block.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "amber/chardev.h"
#include "amber/evloop.h"
#include "amber/log.h"

#define CHARDEV_CTRL_A 0x01
#define CHARDEV_BUF    256

enum chardev_kind { CHARDEV_NONE, CHARDEV_STDIO, CHARDEV_FILE, CHARDEV_FD };

struct chardev {
	enum chardev_kind kind;
	char name[64];			/* spec, shortened, for messages */
	struct evloop *loop;

	int in_fd, out_fd;		/* -1: none */
	bool in_sock, out_sock;		/* use recv/send with MSG_DONTWAIT */
	bool out_blocking;		/* could not get a non-blocking description */
	int kick_fd;			/* eventfd: resume input (loop thread) */
	bool in_watched;		/* loop thread only */
	bool in_closed;			/* EOF or error: no more input */
	atomic_bool paused;		/* receiver is full or said stop */

	pthread_mutex_t deliver_lock;
	chardev_rx_fn rx;
	void *rx_opaque;
	uint8_t pending[CHARDEV_BUF];	/* read but not yet accepted */
	size_t pending_len;
	bool escape;			/* Ctrl-A escapes enabled */
	bool esc_prefix;		/* last input byte was Ctrl-A */
	void (*quit)(void *opaque);
	void *quit_opaque;

	pthread_mutex_t write_lock;
	bool dropping;			/* output stalled: dropping until writable */
	uint64_t dropped;
};

/* ---- terminal ---------------------------------------------------------- */

/*
 * Saved terminal settings, global because signal handlers and atexit need
 * them. Only one stdio chardev owns stdin and the terminal (stdio_busy);
 * later ones (say serial and debug console both on stdio) share stdout only.
 */
static struct termios chardev_saved_tio;
static volatile sig_atomic_t chardev_tio_saved;
static atomic_bool chardev_stdio_busy;
static const int chardev_fatal_signals[] = {
	SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
};

void chardev_restore_terminal(void)
{
	/* tcsetattr is async-signal-safe (POSIX.1-2008 §2.4.3). */
	if (chardev_tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &chardev_saved_tio);
}

static void chardev_fatal_signal(int sig)
{
	chardev_restore_terminal();
	/* SA_RESETHAND put the default action back: deliver it on return. */
	raise(sig);
}

static void chardev_install_signal_handlers(void)
{
	for (size_t i = 0; i < sizeof(chardev_fatal_signals) / sizeof(int); i++) {
		struct sigaction old, sa;

		/* Only where nobody else handles it; amber's own handlers call
		 * chardev_restore_terminal themselves. */
		if (sigaction(chardev_fatal_signals[i], NULL, &old) < 0 ||
		    old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = chardev_fatal_signal;
		sa.sa_flags = SA_RESETHAND;
		sigemptyset(&sa.sa_mask);
		sigaction(chardev_fatal_signals[i], &sa, NULL);
	}
}

static void chardev_remove_signal_handlers(void)
{
	for (size_t i = 0; i < sizeof(chardev_fatal_signals) / sizeof(int); i++) {
		struct sigaction old;

		if (sigaction(chardev_fatal_signals[i], NULL, &old) == 0 &&
		    !(old.sa_flags & SA_SIGINFO) && old.sa_handler == chardev_fatal_signal)
			signal(chardev_fatal_signals[i], SIG_DFL);
	}
}

static int chardev_raw_terminal(void)
{
	static bool atexit_done;
	struct termios tio;

	if (tcgetattr(STDIN_FILENO, &chardev_saved_tio) < 0)
		return -errno;
	chardev_tio_saved = 1;
	if (!atexit_done) {
		atexit(chardev_restore_terminal);
		atexit_done = true;
	}
	chardev_install_signal_handlers();
	tio = chardev_saved_tio;
	/*
	 * Raw input (no echo, no line editing, no signals: Ctrl-C goes to the
	 * guest), but output processing as the user had it, so amber's own
	 * messages ("\r\n") and the guest's output look normal.
	 */
	cfmakeraw(&tio);
	tio.c_oflag = chardev_saved_tio.c_oflag;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &tio) < 0) {
		int ret = -errno;

		chardev_tio_saved = 0;
		return ret;
	}
	return 0;
}

/* ---- descriptors ------------------------------------------------------- */

/*
 * A descriptor for our own use that we may make non-blocking without
 * touching the caller's: see the comment at the top.
 */
static int chardev_own_fd(int fd, int oflags, bool *is_sock, bool *blocking)
{
	struct stat st;
	char path[32];
	int nfd;

	*is_sock = false;
	*blocking = false;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISSOCK(st.st_mode)) {
		*is_sock = true;
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		return nfd < 0 ? -errno : nfd;
	}
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		nfd = open(path, oflags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (nfd >= 0)
			return nfd;
	}
	/* Regular files never block; anything else is waited for with poll. */
	*blocking = !S_ISREG(st.st_mode);
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return nfd < 0 ? -errno : nfd;
}

static void chardev_ignore_sigpipe(void)
{
	struct sigaction old;

	/* A console reader that goes away must not kill the VM: EPIPE instead. */
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO))
		signal(SIGPIPE, SIG_IGN);
}

/* ---- input ------------------------------------------------------------- */

static void chardev_input_ready(void *opaque, int fd, uint32_t events);

static void chardev_help(void)
{
	static const char help[] =
		"\r\namber console escapes:\r\n"
		"  Ctrl-A x       quit amber\r\n"
		"  Ctrl-A Ctrl-A  send Ctrl-A\r\n"
		"  Ctrl-A h       this help\r\n";
	ssize_t r = write(STDERR_FILENO, help, sizeof(help) - 1);

	(void)r;
}

/*
 * Ctrl-A escapes from in[] into out[] (out has room for n + 1 bytes).
 * Returns the output length; *quit is set on Ctrl-A x.
 */
static size_t chardev_escape_filter(struct chardev *c, const uint8_t *in, size_t n,
				    uint8_t *out, bool *quit)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = in[i];

		if (!c->esc_prefix) {
			if (b == CHARDEV_CTRL_A)
				c->esc_prefix = true;
			else
				out[o++] = b;
			continue;
		}
		c->esc_prefix = false;
		switch (b) {
		case 'x':
		case 'X':
			*quit = true;
			return o;
		case 'h':
		case 'H':
		case '?':
			chardev_help();
			break;
		case CHARDEV_CTRL_A:
			out[o++] = CHARDEV_CTRL_A;
			break;
		default:
			/* Not an escape: pass both bytes on. */
			out[o++] = CHARDEV_CTRL_A;
			out[o++] = b;
			break;
		}
	}
	return o;
}

/*
 * Offer pending bytes to the receiver until it takes them all or is full.
 * Called with deliver_lock held.
 */
static void chardev_deliver_locked(struct chardev *c)
{
	while (c->pending_len && !atomic_load(&c->paused)) {
		size_t n;

		if (!c->rx) {
			/* Nobody listens: input is dropped, as on an unconnected line. */
			c->pending_len = 0;
			break;
		}
		n = c->rx(c->rx_opaque, c->pending, c->pending_len);
		if (n == 0) {
			/*
			 * Full. Mark paused, then offer once more: space freed
			 * between the first offer and the flag would otherwise
			 * be missed by chardev_accept_input, which only kicks
			 * when it sees paused set.
			 */
			atomic_store(&c->paused, true);
			n = c->rx(c->rx_opaque, c->pending, c->pending_len);
			if (n == 0)
				break;
			atomic_store(&c->paused, false);
		}
		if (n > c->pending_len)
			n = c->pending_len;
		memmove(c->pending, c->pending + n, c->pending_len - n);
		c->pending_len -= n;
	}
}

static void chardev_quit(struct chardev *c)
{
	if (c->quit) {
		c->quit(c->quit_opaque);
		return;
	}
	chardev_restore_terminal();
	log_info("console", "Ctrl-A x: terminating");
	raise(SIGTERM);
}

/* Append raw input bytes (after escapes) and deliver; returns bytes taken. */
static size_t chardev_receive(struct chardev *c, const uint8_t *buf, size_t len)
{
	uint8_t tmp[CHARDEV_BUF + 1];
	size_t taken = 0;
	bool quit = false;

	pthread_mutex_lock(&c->deliver_lock);
	while (taken < len && !quit) {
		/* Room for the filter's worst case (one carried Ctrl-A + byte). */
		size_t room = sizeof(c->pending) - c->pending_len;
		size_t chunk = len - taken, o;

		if (room < 2)
			break;
		if (chunk > room - 1)
			chunk = room - 1;
		if (c->escape) {
			o = chardev_escape_filter(c, buf + taken, chunk, tmp, &quit);
		} else {
			memcpy(tmp, buf + taken, chunk);
			o = chunk;
		}
		memcpy(c->pending + c->pending_len, tmp, o);
		c->pending_len += o;
		taken += chunk;
		chardev_deliver_locked(c);
		if (c->pending_len && atomic_load(&c->paused))
			break;
	}
	pthread_mutex_unlock(&c->deliver_lock);
	if (quit)
		chardev_quit(c);
	return taken;
}

size_t chardev_inject(struct chardev *c, const uint8_t *buf, size_t len)
{
	return c ? chardev_receive(c, buf, len) : 0;
}

/* Loop thread: start or stop watching the input fd as the state says. */
static void chardev_update_watch(struct chardev *c)
{
	bool want;

	pthread_mutex_lock(&c->deliver_lock);
	want = !c->in_closed && !c->pending_len && !atomic_load(&c->paused);
	pthread_mutex_unlock(&c->deliver_lock);
	if (want && !c->in_watched) {
		int ret = evloop_add_fd(c->loop, c->in_fd, EPOLLIN, chardev_input_ready, c);

		if (ret == -EPERM) {
			/* Regular files and /dev/null cannot be polled. */
			log_debug("console", "%s: input cannot be polled; ignored", c->name);
			c->in_closed = true;
		} else if (ret < 0) {
			log_warn("console", "%s: cannot watch input: %s", c->name, strerror(-ret));
			c->in_closed = true;
		} else {
			c->in_watched = true;
		}
	} else if (!want && c->in_watched) {
		evloop_del_fd(c->loop, c->in_fd);
		c->in_watched = false;
	}
}

static void chardev_input_ready(void *opaque, int fd, uint32_t events)
{
	struct chardev *c = opaque;
	uint8_t buf[CHARDEV_BUF / 2];
	ssize_t n;
	bool busy;

	pthread_mutex_lock(&c->deliver_lock);
	busy = c->pending_len || atomic_load(&c->paused);
	pthread_mutex_unlock(&c->deliver_lock);
	if (busy) {
		/* Level-triggered: stop watching until the receiver has room. */
		chardev_update_watch(c);
		return;
	}
	if (c->in_sock)
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	else
		n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		log_warn("console", "%s: reading input: %s; input closed", c->name, strerror(errno));
		c->in_closed = true;
	} else if (n == 0) {
		log_debug("console", "%s: end of input", c->name);
		c->in_closed = true;
	} else {
		/* pending is empty here, so all of buf fits. */
		chardev_receive(c, buf, (size_t)n);
	}
	chardev_update_watch(c);
}

static void chardev_kicked(void *opaque, int fd, uint32_t events)
{
	struct chardev *c = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&c->deliver_lock);
	chardev_deliver_locked(c);
	pthread_mutex_unlock(&c->deliver_lock);
	chardev_update_watch(c);
}

void chardev_accept_input(struct chardev *c, bool on)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (!on) {
		atomic_store(&c->paused, true);
		return;
	}
	/* Only a paused chardev needs waking: one syscall per resume, not per byte. */
	if (atomic_exchange(&c->paused, false) && c->kick_fd >= 0) {
		ssize_t r = write(c->kick_fd, &one, sizeof(one));

		(void)r;	/* EAGAIN: the counter is saturated, a kick is pending */
	}
}

void chardev_set_receiver(struct chardev *c, chardev_rx_fn rx, void *opaque)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->deliver_lock);
	c->rx = rx;
	c->rx_opaque = opaque;
	pthread_mutex_unlock(&c->deliver_lock);
}

void chardev_set_escape(struct chardev *c, bool on)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->deliver_lock);
	c->escape = on;
	c->esc_prefix = false;
	pthread_mutex_unlock(&c->deliver_lock);
}

void chardev_set_quit_handler(struct chardev *c, void (*quit)(void *opaque), void *opaque)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->deliver_lock);
	c->quit = quit;
	c->quit_opaque = opaque;
	pthread_mutex_unlock(&c->deliver_lock);
}

/* ---- output ------------------------------------------------------------ */

static uint64_t chardev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait until out_fd is writable: 1 yes, 0 timed out, -errno. */
static int chardev_wait_writable(struct chardev *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r > 0;
}

/* The same until deadline (CLOCK_MONOTONIC ms): 1 writable, 0 timed out, -errno. */
static int chardev_wait_until(struct chardev *c, uint64_t deadline)
{
	uint64_t now = chardev_now_ms();

	return now >= deadline ? 0 : chardev_wait_writable(c, (int)(deadline - now));
}

ssize_t chardev_write(struct chardev *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	bool wait = c && c->out_blocking;
	uint64_t deadline;
	size_t off = 0;
	ssize_t ret;

	if (!c || c->out_fd < 0 || len == 0)
		return (ssize_t)len;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	pthread_mutex_lock(&c->write_lock);
	if (c->dropping) {
		if (chardev_wait_writable(c, 0) <= 0) {
			c->dropped += len;
			ret = -ETIMEDOUT;
			goto out;
		}
		log_warn("console", "%s: output resumed; %" PRIu64 " bytes were dropped",
			 c->name, c->dropped);
		c->dropping = false;
	}
	deadline = chardev_now_ms() + CHARDEV_WRITE_TIMEOUT_MS;
	while (off < len) {
		ssize_t n;
		int w;

		/* A blocking fd is polled first; a non-blocking one after EAGAIN. */
		if (wait) {
			w = chardev_wait_until(c, deadline);
			if (w == 0)
				goto stalled;
			if (w < 0) {
				ret = w;
				goto out;
			}
		}
		if (c->out_sock)
			n = send(c->out_fd, p + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(c->out_fd, p + off, len - off);
		wait = c->out_blocking;
		if (n > 0) {
			off += (size_t)n;
			deadline = chardev_now_ms() + CHARDEV_WRITE_TIMEOUT_MS;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			wait = true;
			continue;
		}
		ret = n < 0 ? -errno : -EIO;
		goto out;
	}
	ret = (ssize_t)off;
	goto out;

stalled:
	/* Never block a vCPU forever on a reader that stopped reading. */
	c->dropping = true;
	c->dropped += len - off;
	log_warn("console", "%s: output blocked for %d ms; dropping output until it drains",
		 c->name, CHARDEV_WRITE_TIMEOUT_MS);
	ret = -ETIMEDOUT;
out:
	pthread_mutex_unlock(&c->write_lock);
	return ret;
}

uint64_t chardev_dropped_bytes(const struct chardev *c)
{
	return c ? c->dropped : 0;
}

/* ---- open / close ------------------------------------------------------ */

static struct chardev *chardev_alloc(enum chardev_kind kind, const char *spec,
				     struct evloop *loop)
{
	struct chardev *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = kind;
	snprintf(c->name, sizeof(c->name), "chardev %s", spec);
	c->loop = loop;
	c->in_fd = c->out_fd = c->kick_fd = -1;
	atomic_init(&c->paused, false);
	pthread_mutex_init(&c->deliver_lock, NULL);
	pthread_mutex_init(&c->write_lock, NULL);
	return c;
}

/* Set up the input side on the loop (if any). */
static int chardev_start_input(struct chardev *c)
{
	int ret;

	if (c->in_fd < 0 || !c->loop) {
		c->in_closed = true;
		return 0;
	}
	c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->kick_fd < 0)
		return -errno;
	ret = evloop_add_fd(c->loop, c->kick_fd, EPOLLIN, chardev_kicked, c);
	if (ret < 0) {
		close(c->kick_fd);
		c->kick_fd = -1;
		return ret;
	}
	/* Watching the input fd starts on the loop thread's first kick. */
	{
		uint64_t one = 1;
		ssize_t r = write(c->kick_fd, &one, sizeof(one));

		(void)r;
	}
	return 0;
}

static int chardev_setup_fds(struct chardev *c, int in_fd, int out_fd)
{
	bool blocking;
	int fd;

	if (in_fd >= 0 && c->loop) {
		fd = chardev_own_fd(in_fd, O_RDONLY, &c->in_sock, &blocking);
		if (fd < 0)
			return fd;
		c->in_fd = fd;
	}
	if (out_fd >= 0) {
		fd = chardev_own_fd(out_fd, O_WRONLY, &c->out_sock, &c->out_blocking);
		if (fd < 0)
			return fd;
		c->out_fd = fd;
		chardev_ignore_sigpipe();
	}
	return 0;
}

static void chardev_free(struct chardev *c)
{
	if (c->loop) {
		/*
		 * Kick first: its removal waits for a running kick callback,
		 * the only place that starts watching the input fd again.
		 */
		if (c->kick_fd >= 0)
			evloop_del_fd(c->loop, c->kick_fd);
		if (c->in_fd >= 0)
			evloop_del_fd(c->loop, c->in_fd);
	}
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	if (c->in_fd >= 0)
		close(c->in_fd);
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->kind == CHARDEV_STDIO) {
		if (chardev_tio_saved) {
			chardev_restore_terminal();
			chardev_tio_saved = 0;
			chardev_remove_signal_handlers();
		}
		atomic_store(&chardev_stdio_busy, false);
	}
	if (c->dropped)
		log_info("console", "%s: %" PRIu64 " bytes of output were dropped",
			 c->name, c->dropped);
	pthread_mutex_destroy(&c->deliver_lock);
	pthread_mutex_destroy(&c->write_lock);
	free(c);
}

void chardev_close(struct chardev *c)
{
	if (c)
		chardev_free(c);
}

struct chardev *chardev_open_fd(int in_fd, int out_fd, struct evloop *loop,
				char *err, size_t errlen)
{
	char spec[40];
	struct chardev *c;
	int ret;

	snprintf(spec, sizeof(spec), "fd:%d:%d", in_fd, out_fd);
	c = chardev_alloc(CHARDEV_FD, spec, loop);
	if (!c) {
		snprintf(err, errlen, "chardev %s: out of memory", spec);
		return NULL;
	}
	ret = chardev_setup_fds(c, in_fd, out_fd);
	if (ret == 0)
		ret = chardev_start_input(c);
	if (ret < 0) {
		snprintf(err, errlen, "chardev %s: %s", spec, strerror(-ret));
		chardev_free(c);
		return NULL;
	}
	return c;
}

static int chardev_parse_fd(const char *s, const char **end, int *fd)
{
	char *e;
	long v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (e == s || errno || v < -1 || v > INT_MAX)
		return -EINVAL;
	*fd = (int)v;
	*end = e;
	return 0;
}

struct chardev *chardev_open(const char *spec, struct evloop *loop, char *err, size_t errlen)
{
	struct chardev *c = NULL;
	int ret;

	if (!spec || !*spec) {
		snprintf(err, errlen, "chardev: empty spec (want stdio, file:PATH, append:PATH, "
			 "fd:IN:OUT or none)");
		return NULL;
	}
	if (strcmp(spec, "none") == 0) {
		c = chardev_alloc(CHARDEV_NONE, spec, loop);
		if (!c)
			goto nomem;
		c->in_closed = true;
		return c;
	}
	if (strcmp(spec, "stdio") == 0) {
		bool tty = isatty(STDIN_FILENO);

		if (atomic_exchange(&chardev_stdio_busy, true)) {
			/* stdin is taken: this one writes to stdout, no input. */
			log_debug("console", "stdio already has a reader; output only");
			c = chardev_alloc(CHARDEV_FD, spec, NULL);
			if (!c)
				goto nomem;
			ret = chardev_setup_fds(c, -1, STDOUT_FILENO);
			if (ret < 0)
				goto fail;
			c->in_closed = true;
			return c;
		}
		c = chardev_alloc(CHARDEV_STDIO, spec, loop);
		if (!c) {
			atomic_store(&chardev_stdio_busy, false);
			goto nomem;
		}
		ret = chardev_setup_fds(c, STDIN_FILENO, STDOUT_FILENO);
		if (ret == 0 && tty && loop) {
			ret = chardev_raw_terminal();
			c->escape = true;
		}
		if (ret == 0)
			ret = chardev_start_input(c);
		if (ret < 0)
			goto fail;
		return c;
	}
	if (strncmp(spec, "file:", 5) == 0 || strncmp(spec, "append:", 7) == 0) {
		bool append = spec[0] == 'a';
		const char *path = strchr(spec, ':') + 1;
		int fd;

		if (!*path) {
			snprintf(err, errlen, "chardev \"%s\": missing path", spec);
			return NULL;
		}
		c = chardev_alloc(CHARDEV_FILE, spec, loop);
		if (!c)
			goto nomem;
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY |
			  (append ? O_APPEND : O_TRUNC), 0644);
		if (fd < 0) {
			ret = -errno;
			goto fail;
		}
		c->out_fd = fd;
		c->out_blocking = false;
		{
			struct stat st;

			/* A FIFO or terminal given as "file" must not block forever. */
			if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
				bool sock;
				int nfd = chardev_own_fd(fd, O_WRONLY, &sock, &c->out_blocking);

				if (nfd >= 0) {
					close(fd);
					c->out_fd = nfd;
					c->out_sock = sock;
				} else {
					c->out_blocking = true;
				}
				chardev_ignore_sigpipe();
			}
		}
		c->in_closed = true;
		return c;
	}
	if (strncmp(spec, "fd:", 3) == 0) {
		const char *p = spec + 3;
		int in_fd, out_fd;

		if (chardev_parse_fd(p, &p, &in_fd) < 0 || *p != ':' ||
		    chardev_parse_fd(p + 1, &p, &out_fd) < 0 || *p) {
			snprintf(err, errlen, "chardev \"%s\": want fd:IN:OUT with fd numbers or -1", spec);
			return NULL;
		}
		return chardev_open_fd(in_fd, out_fd, loop, err, errlen);
	}
	snprintf(err, errlen, "chardev \"%s\": unknown backend (want stdio, file:PATH, "
		 "append:PATH, fd:IN:OUT or none)", spec);
	return NULL;

nomem:
	snprintf(err, errlen, "chardev %s: out of memory", spec);
	return NULL;
fail:
	snprintf(err, errlen, "chardev \"%s\": %s", spec, strerror(-ret));
	chardev_free(c);
	return NULL;
}
