/*
 * The control socket: a UNIX stream socket speaking the QMP wire protocol
 * (QEMU docs/interop/qmp-spec.rst), so QMP clients (socat, qmp-shell,
 * python qemu.qmp, `amber ctl`) work unchanged.
 *
 * Every client gets a greeting, must send `qmp_capabilities` first, then
 * sends {"execute": NAME, "arguments": {...}, "id": ANY} and gets
 * {"return": ...} or {"error": {"class": ..., "desc": ...}} with the id
 * echoed. Events go to every negotiated client.
 *
 * Threads: all socket work, and every command callback, runs on the event
 * loop thread. control_register, control_emit_event and the control_req_*
 * completion calls are safe from any thread.
 */
#ifndef AMBER_CONTROL_H
#define AMBER_CONTROL_H

#include <stddef.h>
#include <jansson.h>

struct evloop;
struct control;
struct control_req;

/* Bytes of one JSON value a client may send before it is disconnected. */
#define CONTROL_MAX_INPUT (1u << 20)

/*
 * A synchronous command, run on the loop thread. args is always an object
 * (empty when the client sent none). On success return 0 and optionally set
 * *ret to a new reference (NULL means {}); on failure return -errno and
 * write a message for people to err (empty err: strerror is used). The
 * error class sent is GenericError.
 */
typedef int (*control_cmd_fn)(void *opaque, const json_t *args, json_t **ret,
			      char *err, size_t errlen);

/*
 * An asynchronous command, for work that must not block the event loop
 * (checkpoint waits for I/O completions that the loop delivers; migration
 * streams for a long time). Called on the loop thread; args is valid only
 * during the call (json_incref it to keep it). The command finishes later,
 * from any thread, with exactly one control_req_return or control_req_error.
 * The client's further commands wait until then (QMP answers in order).
 */
typedef void (*control_async_fn)(void *opaque, const json_t *args, struct control_req *req);

/*
 * Before creating a VM: 0 if a server may bind path (nothing there, or a
 * stale socket, which is removed); -EADDRINUSE if a process answers on it;
 * another -errno (with a message in err) if path is not a socket or cannot
 * be checked.
 */
int control_check_path(const char *path, char *err, size_t errlen);

/* Listen on path and serve clients on loop. NULL with err filled on failure. */
struct control *control_new(struct evloop *loop, const char *path, char *err, size_t errlen);
/*
 * Close every client (flushing pending replies for a short bounded time, so
 * the answer to `quit` reaches its client), stop listening and unlink the
 * socket. Call on the loop thread or when the loop is not running, after
 * every async request has completed.
 */
void control_free(struct control *ctl);

/* 0, -EEXIST if name is taken, -EINVAL, -ENOMEM. */
int control_register(struct control *ctl, const char *name, control_cmd_fn fn, void *opaque);
int control_register_async(struct control *ctl, const char *name, control_async_fn fn,
			   void *opaque);

/*
 * Broadcast {"event": name, "data": data, "timestamp": ...} to every
 * negotiated client. Takes ownership of data (NULL means {}). From any
 * thread; on the loop thread the event is sent before this returns, so an
 * event emitted by a command precedes the command's reply, as in QEMU.
 */
void control_emit_event(struct control *ctl, const char *name, json_t *data);

/* Complete an async command (from any thread). Takes ownership of ret (NULL means {}). */
void control_req_return(struct control_req *req, json_t *ret);
void control_req_error(struct control_req *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Number of connected clients (for tests and `query-status`-like reports); loop thread. */
unsigned control_client_count(struct control *ctl);

#endif
