/*
 * The control socket server, speaking the QMP wire protocol
 * (QEMU docs/interop/qmp-spec.rst; behaviour checked against QEMU's
 * monitor/qmp.c and qapi/qmp-dispatch.c):
 *
 *  - on connect the server sends the greeting {"QMP": {...}};
 *  - the client must send qmp_capabilities first; anything else is answered
 *    with CommandNotFound (spec §4 "Capabilities negotiation");
 *  - one reply per command, in order, carrying the command's "id";
 *  - malformed input gets a GenericError and the stream goes on;
 *  - events go to every client that finished negotiation.
 *
 * Output is one JSON document per line ending in "\r\n" like QEMU's monitor.
 *
 * Everything touching sockets runs on the event loop thread. Other threads
 * reach it through queues (events, async completions) and an eventfd.
 * A client is freed only from a top-level loop callback (its own fd or the
 * notify eventfd), never while its input is being processed: code deeper in
 * the stack marks it dead and pokes the eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "amber/control.h"
#include "amber/evloop.h"
#include "amber/log.h"
#include "control/jsonstream.h"

#ifndef AMBER_VERSION
#define AMBER_VERSION "0.0.0"
#endif

/* A client that reads nothing while replies and events pile up is dropped. */
#define CONTROL_MAX_OUTPUT (16u << 20)
#define CONTROL_READ_CHUNK 65536
/* Reads per wakeup: other clients and fds get their turn. */
#define CONTROL_READS_PER_EVENT 16
/* control_free: how long pending replies may take to drain, in total. */
#define CONTROL_FLUSH_MS 200

struct control_cmd {
	char *name;
	control_cmd_fn fn;
	control_async_fn afn;
	void *opaque;
};

struct control_client {
	struct control_client *next;
	struct control *ctl;
	int fd;
	uint64_t id;
	uint32_t events;	/* what the loop currently watches for */
	bool negotiated;
	bool busy;		/* an async command is running: input waits */
	bool eof;		/* the peer shut down its sending side */
	bool closing;		/* close once the output is flushed */
	bool dead;		/* close now */
	struct json_stream in;
	char *out;
	size_t out_len, out_cap;
};

struct control_req {
	struct control_req *next;	/* completion queue */
	struct control *ctl;
	uint64_t client_id;
	json_t *id;		/* the request's "id", or NULL */
	json_t *ret;
	char *err;		/* set: the command failed */
	bool in_dispatch;	/* completing inside the command callback */
};

struct control_event {
	struct control_event *next;
	json_t *msg;
};

struct control {
	struct evloop *loop;
	char *path;
	int listen_fd;
	int notify_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	pthread_mutex_t lock;	/* cmds, events queue, done queue */
	struct control_cmd *cmds;
	size_t ncmds, cap_cmds;
	struct control_event *events_head, **events_tail;
	struct control_req *done_head, **done_tail;
	struct control_client *clients;	/* loop thread only */
	uint64_t next_client_id;
};

static void control_notify(struct control *ctl)
{
	uint64_t one = 1;

	if (write(ctl->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("control", "cannot wake the control socket handler: %s", strerror(errno));
}

/* ---- client output ---- */

static void client_kill(struct control_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	/* Freed by the next top-level callback; make sure one comes. */
	control_notify(c->ctl);
}

static void client_update_events(struct control_client *c)
{
	uint32_t want = 0;

	if (c->dead)
		return;
	if (!c->busy && !c->closing && !c->eof)
		want |= EPOLLIN;
	if (c->out_len)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	/* events == 0 still reports EPOLLHUP/EPOLLERR: a vanished client is noticed. */
	if (evloop_mod_fd(c->ctl->loop, c->fd, want) == 0)
		c->events = want;
}

static void client_flush(struct control_client *c)
{
	size_t done = 0;

	while (!c->dead && done < c->out_len) {
		ssize_t n = send(c->fd, c->out + done, c->out_len - done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("control", "client %llu: send: %s",
					  (unsigned long long)c->id, strerror(errno));
				client_kill(c);
			}
			break;
		}
		done += n;
	}
	memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	client_update_events(c);
}

static void client_send_text(struct control_client *c, const char *text, size_t len)
{
	if (c->dead)
		return;
	if (c->out_len + len + 2 > CONTROL_MAX_OUTPUT) {
		log_warn("control", "client %llu reads no replies (%zu bytes queued): disconnecting",
			 (unsigned long long)c->id, c->out_len);
		client_kill(c);
		return;
	}
	if (c->out_len + len + 2 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + len + 2)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			client_kill(c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, text, len);
	/* QEMU's monitor_puts turns "\n" into "\r\n"; clients cope with either. */
	memcpy(c->out + c->out_len + len, "\r\n", 2);
	c->out_len += len + 2;
	client_flush(c);
}

static void client_send(struct control_client *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_ENCODE_ANY);

	if (!text) {
		client_kill(c);
		return;
	}
	client_send_text(c, text, strlen(text));
	free(text);
}

/* Send msg (consumed; NULL: out of memory) as the reply to the request with id. */
static void client_send_reply(struct control_client *c, json_t *id, json_t *msg)
{
	if (!msg) {
		client_kill(c);
		return;
	}
	if (id)
		json_object_set(msg, "id", id);
	client_send(c, msg);
	json_decref(msg);
}

static void client_send_error(struct control_client *c, json_t *id, const char *cls,
			      const char *desc)
{
	client_send_reply(c, id, json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", desc));
}

static void client_free(struct control_client *c)
{
	evloop_del_fd(c->ctl->loop, c->fd);
	close(c->fd);
	json_stream_destroy(&c->in);
	free(c->out);
	free(c);
}

/* Top-level callbacks only: free clients that are finished. */
static void control_reap(struct control *ctl)
{
	struct control_client **pp = &ctl->clients, *c;

	while ((c = *pp)) {
		if (c->dead || (c->closing && !c->busy && !c->out_len)) {
			*pp = c->next;
			log_debug("control", "client %llu disconnected", (unsigned long long)c->id);
			client_free(c);
		} else {
			pp = &c->next;
		}
	}
}

static struct control_client *control_find_client(struct control *ctl, uint64_t id)
{
	struct control_client *c;

	for (c = ctl->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* ---- events ---- */

static void control_broadcast(struct control *ctl, json_t *msg)
{
	struct control_client *c;
	char *text = json_dumps(msg, JSON_ENCODE_ANY);

	if (!text)
		return;
	for (c = ctl->clients; c; c = c->next)
		if (c->negotiated && !c->dead)
			client_send_text(c, text, strlen(text));
	free(text);
}

static void control_flush_events(struct control *ctl)
{
	struct control_event *e, *next;

	pthread_mutex_lock(&ctl->lock);
	e = ctl->events_head;
	ctl->events_head = NULL;
	ctl->events_tail = &ctl->events_head;
	pthread_mutex_unlock(&ctl->lock);
	for (; e; e = next) {
		next = e->next;
		control_broadcast(ctl, e->msg);
		json_decref(e->msg);
		free(e);
	}
}

void control_emit_event(struct control *ctl, const char *name, json_t *data)
{
	struct control_event *e;
	struct timespec ts;
	json_t *msg;

	/* QMP events carry wall-clock time (QEMU: g_get_real_time()). */
	clock_gettime(CLOCK_REALTIME, &ts);
	msg = json_pack("{s:s,s:o,s:{s:I,s:I}}", "event", name,
			"data", data ? data : json_object(),
			"timestamp", "seconds", (json_int_t)ts.tv_sec,
			"microseconds", (json_int_t)(ts.tv_nsec / 1000));
	if (!msg) {
		log_warn("control", "cannot build event %s", name);
		return;
	}
	if (evloop_on_loop_thread(ctl->loop)) {
		/* Keep order with events queued earlier by other threads. */
		control_flush_events(ctl);
		control_broadcast(ctl, msg);
		json_decref(msg);
		return;
	}
	e = malloc(sizeof(*e));
	if (!e) {
		json_decref(msg);
		return;
	}
	e->next = NULL;
	e->msg = msg;
	pthread_mutex_lock(&ctl->lock);
	*ctl->events_tail = e;
	ctl->events_tail = &e->next;
	pthread_mutex_unlock(&ctl->lock);
	control_notify(ctl);
}

/* ---- commands ---- */

static void client_process(struct control_client *c);

static void control_req_free(struct control_req *req)
{
	json_decref(req->id);
	json_decref(req->ret);
	free(req->err);
	free(req);
}

/* On the loop thread: send the reply and let the client's next command in. */
static void control_req_finish(struct control_req *req)
{
	struct control_client *c = control_find_client(req->ctl, req->client_id);

	if (c) {
		if (req->err) {
			client_send_error(c, req->id, "GenericError", req->err);
		} else {
			/* "o" steals the reference, also when json_pack fails. */
			client_send_reply(c, req->id,
					  json_pack("{s:o}", "return",
						    req->ret ? json_incref(req->ret) : json_object()));
		}
		c->busy = false;
		/* Inside dispatch the caller's loop goes on with the next command. */
		if (!req->in_dispatch)
			client_process(c);
	}
	control_req_free(req);
}

static void control_req_complete(struct control_req *req)
{
	struct control *ctl = req->ctl;

	if (evloop_on_loop_thread(ctl->loop)) {
		control_req_finish(req);
		return;
	}
	req->next = NULL;
	pthread_mutex_lock(&ctl->lock);
	*ctl->done_tail = req;
	ctl->done_tail = &req->next;
	pthread_mutex_unlock(&ctl->lock);
	control_notify(ctl);
}

void control_req_return(struct control_req *req, json_t *ret)
{
	req->ret = ret;
	control_req_complete(req);
}

void control_req_error(struct control_req *req, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&req->err, fmt, ap) < 0)
		req->err = NULL;
	va_end(ap);
	if (!req->err)
		req->err = strdup("out of memory");
	/* Even with no memory for a message the client is answered and unblocked. */
	control_req_complete(req);
}

static int control_find_cmd(struct control *ctl, const char *name, struct control_cmd *out)
{
	size_t i;
	int ret = -ENOENT;

	pthread_mutex_lock(&ctl->lock);
	for (i = 0; i < ctl->ncmds; i++) {
		if (!strcmp(ctl->cmds[i].name, name)) {
			*out = ctl->cmds[i];
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

static int control_add_cmd(struct control *ctl, const char *name, control_cmd_fn fn,
			   control_async_fn afn, void *opaque)
{
	struct control_cmd cmd;
	int ret = 0;
	size_t i;

	if (!name || !*name || (!fn && !afn))
		return -EINVAL;
	pthread_mutex_lock(&ctl->lock);
	for (i = 0; i < ctl->ncmds; i++) {
		if (!strcmp(ctl->cmds[i].name, name)) {
			ret = -EEXIST;
			goto out;
		}
	}
	if (ctl->ncmds == ctl->cap_cmds) {
		size_t cap = ctl->cap_cmds ? ctl->cap_cmds * 2 : 16;
		struct control_cmd *p = realloc(ctl->cmds, cap * sizeof(*p));

		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		ctl->cmds = p;
		ctl->cap_cmds = cap;
	}
	cmd.name = strdup(name);
	if (!cmd.name) {
		ret = -ENOMEM;
		goto out;
	}
	cmd.fn = fn;
	cmd.afn = afn;
	cmd.opaque = opaque;
	ctl->cmds[ctl->ncmds++] = cmd;
out:
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

int control_register(struct control *ctl, const char *name, control_cmd_fn fn, void *opaque)
{
	return control_add_cmd(ctl, name, fn, NULL, opaque);
}

int control_register_async(struct control *ctl, const char *name, control_async_fn fn,
			   void *opaque)
{
	return control_add_cmd(ctl, name, NULL, fn, opaque);
}

/* qmp_capabilities: QEMU qmp_qmp_capabilities(); amber offers no capability (no "oob"). */
static void client_negotiate(struct control_client *c, json_t *id, json_t *args)
{
	const char *key;
	json_t *val;
	char desc[256];

	json_object_foreach(args, key, val) {
		size_t i;
		json_t *cap;

		if (strcmp(key, "enable")) {
			snprintf(desc, sizeof(desc), "Parameter '%s' is unexpected", key);
			client_send_error(c, id, "GenericError", desc);
			return;
		}
		if (!json_is_array(val)) {
			client_send_error(c, id, "GenericError",
					  "Invalid parameter type for 'enable', expected: array");
			return;
		}
		json_array_foreach(val, i, cap) {
			snprintf(desc, sizeof(desc), "Capability '%s' not available",
				 json_is_string(cap) ? json_string_value(cap) : "?");
			client_send_error(c, id, "GenericError", desc);
			return;
		}
	}
	c->negotiated = true;
	client_send_reply(c, id, json_pack("{s:{}}", "return"));
}

/* One request object: QEMU qmp_dispatch() + qmp_dispatch_check_obj(). */
static void client_dispatch(struct control_client *c, json_t *msg)
{
	struct control *ctl = c->ctl;
	const char *key, *name = NULL;
	json_t *val, *id, *args = NULL, *empty = NULL;
	struct control_cmd cmd;
	struct control_req *req;
	char desc[320];

	if (!json_is_object(msg)) {
		client_send_error(c, NULL, "GenericError", "QMP input must be a JSON object");
		return;
	}
	id = json_object_get(msg, "id");
	json_object_foreach(msg, key, val) {
		if (!strcmp(key, "execute")) {
			if (!json_is_string(val)) {
				client_send_error(c, id, "GenericError",
						  "QMP input member 'execute' must be a string");
				return;
			}
			name = json_string_value(val);
		} else if (!strcmp(key, "arguments")) {
			if (!json_is_object(val)) {
				client_send_error(c, id, "GenericError",
						  "QMP input member 'arguments' must be an object");
				return;
			}
			args = val;
		} else if (strcmp(key, "id")) {
			snprintf(desc, sizeof(desc), "QMP input member '%.200s' is unexpected", key);
			client_send_error(c, id, "GenericError", desc);
			return;
		}
	}
	if (!name) {
		client_send_error(c, id, "GenericError", "QMP input lacks member 'execute'");
		return;
	}
	if (!args)
		args = empty = json_object();
	if (!args) {
		client_kill(c);
		return;
	}
	if (!strcmp(name, "qmp_capabilities")) {
		if (c->negotiated)
			client_send_error(c, id, "CommandNotFound",
					  "Capabilities negotiation is already complete, command ignored");
		else
			client_negotiate(c, id, args);
		goto out;
	}
	if (!c->negotiated) {
		client_send_error(c, id, "CommandNotFound",
				  "Expecting capabilities negotiation with 'qmp_capabilities'");
		goto out;
	}
	if (control_find_cmd(ctl, name, &cmd) < 0) {
		snprintf(desc, sizeof(desc), "The command %.200s has not been found", name);
		client_send_error(c, id, "CommandNotFound", desc);
		goto out;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		client_send_error(c, id, "GenericError", "out of memory");
		goto out;
	}
	req->ctl = ctl;
	req->client_id = c->id;
	req->id = json_incref(id);
	req->in_dispatch = true;
	c->busy = true;
	if (cmd.fn) {
		json_t *ret = NULL;
		char err[512] = "";
		int rc = cmd.fn(cmd.opaque, args, &ret, err, sizeof(err));

		if (rc < 0) {
			json_decref(ret);
			control_req_error(req, "%s", err[0] ? err : strerror(-rc));
		} else {
			control_req_return(req, ret);
		}
	} else {
		cmd.afn(cmd.opaque, args, req);
		/*
		 * Still pending: completion may come on another thread at any
		 * moment, so req is touched under the queue lock only. A finish
		 * on this thread inside afn has already freed it.
		 */
		pthread_mutex_lock(&ctl->lock);
		if (c->busy)
			req->in_dispatch = false;
		pthread_mutex_unlock(&ctl->lock);
	}
out:
	json_decref(empty);
}

static void client_process(struct control_client *c)
{
	char err[256];

	while (!c->busy && !c->closing && !c->dead) {
		json_t *val;
		int r = json_stream_next(&c->in, &val, err, sizeof(err));

		if (r == 0)
			break;
		if (r < 0) {
			snprintf(err, sizeof(err),
				 "QMP input exceeds %u bytes without a complete JSON value",
				 CONTROL_MAX_INPUT);
			log_warn("control", "client %llu: %s: disconnecting",
				 (unsigned long long)c->id, err);
			client_send_error(c, NULL, "GenericError", err);
			c->closing = true;
			break;
		}
		if (!val) {
			client_send_error(c, NULL, "GenericError", err);
			continue;
		}
		client_dispatch(c, val);
		json_decref(val);
	}
	/* The peer sent all it will: answer it, then hang up like QEMU. */
	if (c->eof && !c->busy)
		c->closing = true;
	if (c->closing && !c->busy && !c->out_len)
		control_notify(c->ctl);
	client_update_events(c);
}

static void client_read(struct control_client *c)
{
	char buf[CONTROL_READ_CHUNK];
	int i;

	for (i = 0; i < CONTROL_READS_PER_EVENT && !c->busy && !c->closing && !c->dead; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				client_kill(c);
			break;
		}
		if (n == 0) {
			c->eof = true;
			client_process(c);
			break;
		}
		if (json_stream_feed(&c->in, buf, n) < 0) {
			client_kill(c);
			break;
		}
		client_process(c);
	}
}

static void client_on_event(void *opaque, int fd, uint32_t events)
{
	struct control_client *c = opaque;
	struct control *ctl = c->ctl;

	if (events & EPOLLERR)
		client_kill(c);
	if (events & EPOLLOUT)
		client_flush(c);
	if (events & (EPOLLIN | EPOLLHUP))
		client_read(c);
	/* Hung up entirely: nobody is left to read what we would send. */
	if ((events & EPOLLHUP) && !(events & EPOLLIN))
		client_kill(c);
	client_update_events(c);
	control_reap(ctl);
}

/* ---- built-in commands ---- */

static json_t *control_version(void)
{
	int major = 0, minor = 0, micro = 0;

	sscanf(AMBER_VERSION, "%d.%d.%d", &major, &minor, &micro);
	return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", major, "minor", minor,
			 "micro", micro, "package", "amber " AMBER_VERSION);
}

static int control_query_version(void *opaque, const json_t *args, json_t **ret,
				 char *err, size_t errlen)
{
	*ret = control_version();
	return *ret ? 0 : -ENOMEM;
}

static int control_query_commands(void *opaque, const json_t *args, json_t **ret,
				  char *err, size_t errlen)
{
	struct control *ctl = opaque;
	json_t *list = json_array();
	size_t i;

	if (!list)
		return -ENOMEM;
	json_array_append_new(list, json_pack("{s:s}", "name", "qmp_capabilities"));
	pthread_mutex_lock(&ctl->lock);
	for (i = 0; i < ctl->ncmds; i++)
		json_array_append_new(list, json_pack("{s:s}", "name", ctl->cmds[i].name));
	pthread_mutex_unlock(&ctl->lock);
	*ret = list;
	return 0;
}

/* ---- server ---- */

static void control_accept(void *opaque, int fd, uint32_t events)
{
	struct control *ctl = opaque;
	int i;

	for (i = 0; i < 16; i++) {
		struct control_client *c;
		json_t *greeting;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control", "%s: accept: %s", ctl->path, strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(cfd);
			return;
		}
		c->ctl = ctl;
		c->fd = cfd;
		c->id = ++ctl->next_client_id;
		c->events = EPOLLIN;
		json_stream_init(&c->in, CONTROL_MAX_INPUT);
		if (evloop_add_fd(ctl->loop, cfd, c->events, client_on_event, c) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		c->next = ctl->clients;
		ctl->clients = c;
		log_debug("control", "client %llu connected", (unsigned long long)c->id);
		/* QMP spec §2.2: the server greets first. */
		greeting = json_pack("{s:{s:o,s:[]}}", "QMP", "version", control_version(),
				     "capabilities");
		if (greeting) {
			client_send(c, greeting);
			json_decref(greeting);
		} else {
			client_kill(c);
		}
	}
}

static void control_on_notify(void *opaque, int fd, uint32_t events)
{
	struct control *ctl = opaque;
	struct control_req *req, *next;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("control", "reading the notify eventfd: %s", strerror(errno));
	control_flush_events(ctl);
	pthread_mutex_lock(&ctl->lock);
	req = ctl->done_head;
	ctl->done_head = NULL;
	ctl->done_tail = &ctl->done_head;
	pthread_mutex_unlock(&ctl->lock);
	for (; req; req = next) {
		next = req->next;
		control_req_finish(req);
	}
	control_reap(ctl);
}

int control_check_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes",
			 path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return ret;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s exists and is not a socket", path);
		return -EEXIST;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
		return ret;
	}
	/* EAGAIN: a listener whose backlog is full is still a live process. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		snprintf(err, errlen, "control socket %s is in use by a running process", path);
		ret = -EADDRINUSE;
	} else if (errno == ECONNREFUSED) {
		/* Left behind by a process that died: nobody listens. */
		if (unlink(path) < 0 && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "control socket %s: cannot remove stale socket: %s",
				 path, strerror(errno));
		}
	} else {
		ret = -errno;
		snprintf(err, errlen, "control socket %s: cannot check whether it is in use: %s",
			 path, strerror(errno));
	}
	close(fd);
	return ret;
}

struct control *control_new(struct evloop *loop, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *ctl;
	struct stat st;

	if (control_check_path(path, err, errlen) < 0)
		return NULL;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		return NULL;
	}
	ctl->loop = loop;
	ctl->listen_fd = ctl->notify_fd = -1;
	ctl->events_tail = &ctl->events_head;
	ctl->done_tail = &ctl->done_head;
	pthread_mutex_init(&ctl->lock, NULL);
	ctl->path = strdup(path);
	if (!ctl->path) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		goto fail;
	}
	strcpy(sa.sun_path, path);
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->listen_fd < 0) {
		snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
		goto fail;
	}
	if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "control socket %s: bind: %s", path, strerror(errno));
		goto fail_close;
	}
	/* Remember which file is ours, so control_free never unlinks a successor's. */
	if (stat(path, &st) == 0) {
		ctl->sock_dev = st.st_dev;
		ctl->sock_ino = st.st_ino;
	}
	if (listen(ctl->listen_fd, 16) < 0) {
		snprintf(err, errlen, "control socket %s: listen: %s", path, strerror(errno));
		goto fail_unlink;
	}
	ctl->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->notify_fd < 0) {
		snprintf(err, errlen, "control socket %s: eventfd: %s", path, strerror(errno));
		goto fail_unlink;
	}
	if (control_register(ctl, "query-version", control_query_version, ctl) < 0 ||
	    control_register(ctl, "query-commands", control_query_commands, ctl) < 0) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		goto fail_notify;
	}
	if (evloop_add_fd(loop, ctl->notify_fd, EPOLLIN, control_on_notify, ctl) < 0) {
		snprintf(err, errlen, "control socket %s: cannot watch the notify eventfd", path);
		goto fail_notify;
	}
	if (evloop_add_fd(loop, ctl->listen_fd, EPOLLIN, control_accept, ctl) < 0) {
		snprintf(err, errlen, "control socket %s: cannot watch the socket", path);
		goto fail_watch;
	}
	return ctl;

fail_watch:
	evloop_del_fd(loop, ctl->notify_fd);
fail_notify:
	close(ctl->notify_fd);
	ctl->notify_fd = -1;
fail_unlink:
	unlink(path);
fail_close:
	close(ctl->listen_fd);
	ctl->listen_fd = -1;
fail:
	while (ctl->ncmds)
		free(ctl->cmds[--ctl->ncmds].name);
	free(ctl->cmds);
	free(ctl->path);
	pthread_mutex_destroy(&ctl->lock);
	free(ctl);
	return NULL;
}

/* Best effort, bounded: a reply such as quit's should reach its client. */
static void control_flush_all(struct control *ctl)
{
	struct timespec start, now;
	struct control_client *c;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pfd;
		long left;

		for (c = ctl->clients; c; c = c->next)
			if (!c->dead && c->out_len)
				break;
		if (!c)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = CONTROL_FLUSH_MS - ((now.tv_sec - start.tv_sec) * 1000 +
					   (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0)
			return;
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, left) > 0)
			client_flush(c);
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			c->dead = true;
	}
}

void control_free(struct control *ctl)
{
	struct control_client *c;
	struct control_event *e;
	struct control_req *req;
	struct stat st;

	if (!ctl)
		return;
	/* From here on clients get answers already due, but no new command runs. */
	for (c = ctl->clients; c; c = c->next)
		c->closing = true;
	evloop_del_fd(ctl->loop, ctl->listen_fd);
	close(ctl->listen_fd);
	if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev && st.st_ino == ctl->sock_ino)
		unlink(ctl->path);
	evloop_del_fd(ctl->loop, ctl->notify_fd);
	close(ctl->notify_fd);
	/* Events emitted just before shutdown (SHUTDOWN, STOP) still go out. */
	control_flush_events(ctl);
	pthread_mutex_lock(&ctl->lock);
	req = ctl->done_head;
	ctl->done_head = NULL;
	pthread_mutex_unlock(&ctl->lock);
	while (req) {
		struct control_req *next = req->next;

		control_req_finish(req);
		req = next;
	}
	control_flush_all(ctl);
	while ((c = ctl->clients)) {
		ctl->clients = c->next;
		client_free(c);
	}
	while ((e = ctl->events_head)) {
		ctl->events_head = e->next;
		json_decref(e->msg);
		free(e);
	}
	while (ctl->ncmds)
		free(ctl->cmds[--ctl->ncmds].name);
	free(ctl->cmds);
	free(ctl->path);
	pthread_mutex_destroy(&ctl->lock);
	free(ctl);
}

unsigned control_client_count(struct control *ctl)
{
	struct control_client *c;
	unsigned n = 0;

	for (c = ctl->clients; c; c = c->next)
		n++;
	return n;
}
