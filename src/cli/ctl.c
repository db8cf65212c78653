/*
 * amber ctl PATH COMMAND [ARGS]: connect to a running amber's control
 * socket, negotiate QMP, execute one command and print its result for
 * people. Every wait is bounded by --timeout.
 *
 * Adding a subcommand is one row in ctl_cmds[]: its QMP command, and if it
 * takes arguments a function that turns argv into the "arguments" object.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <jansson.h>

#include "amber/cli.h"
#include "amber/control.h"
#include "control/jsonstream.h"

#define CTL_DEFAULT_TIMEOUT_S 10.0
#define CTL_ID "amber-ctl"

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

struct ctl_cmd {
	const char *name;
	const char *args_usage;
	const char *help;
	const char *qmp;
	/* Default wait when --timeout is not given (checkpoint writes all of RAM). */
	double timeout_s;
	/* The server may hang up instead of answering (quit): that is success. */
	bool eof_ok;
	/* Build the "arguments" object (or, for qmp, the whole request); NULL: no ARGS. */
	int (*build)(int argc, char **argv, json_t **out, char *err, size_t errlen);
	void (*print)(json_t *ret);
};

struct ctl_conn {
	const char *path;
	int fd;
	struct timespec deadline;
	struct json_stream in;
};

/* ---- argument builders ---- */

static int ctl_build_checkpoint(int argc, char **argv, json_t **out, char *err, size_t errlen)
{
	const char *dir = NULL, *then = NULL;
	bool force = false;
	char *abs = NULL;
	json_t *args;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--force")) {
			force = true;
		} else if (!strcmp(argv[i], "--then") || !strncmp(argv[i], "--then=", 7)) {
			if (argv[i][6] == '=') {
				then = argv[i] + 7;
			} else if (i + 1 < argc) {
				then = argv[++i];
			} else {
				snprintf(err, errlen, "--then needs a value: resume, stop or quit");
				return -EINVAL;
			}
			if (strcmp(then, "resume") && strcmp(then, "stop") && strcmp(then, "quit")) {
				snprintf(err, errlen, "--then %s: expected resume, stop or quit", then);
				return -EINVAL;
			}
		} else if (argv[i][0] == '-' && argv[i][1]) {
			snprintf(err, errlen, "checkpoint: unknown option %s", argv[i]);
			return -EINVAL;
		} else if (!dir) {
			dir = argv[i];
		} else {
			snprintf(err, errlen, "checkpoint: unexpected argument %s", argv[i]);
			return -EINVAL;
		}
	}
	if (!dir || !*dir) {
		snprintf(err, errlen, "checkpoint needs a directory");
		return -EINVAL;
	}
	/* The server resolves paths against its own working directory, not ours. */
	if (dir[0] != '/') {
		char *cwd = getcwd(NULL, 0);

		if (!cwd || asprintf(&abs, "%s/%s", cwd, dir) < 0) {
			free(cwd);
			snprintf(err, errlen, "checkpoint %s: cannot make the path absolute", dir);
			return -ENOMEM;
		}
		free(cwd);
		dir = abs;
	}
	args = json_pack("{s:s,s:b}", "path", dir, "force", force);
	if (args && then)
		json_object_set_new(args, "then", json_string(then));
	free(abs);
	if (!args)
		return -ENOMEM;
	*out = args;
	return 0;
}

/* qmp JSON: a whole request, {"execute": ..., ...}, sent as given. */
static int ctl_build_raw(int argc, char **argv, json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *req;

	if (argc != 1) {
		snprintf(err, errlen, "qmp takes one JSON argument, e.g. '{\"execute\": \"query-status\"}'");
		return -EINVAL;
	}
	req = json_loads(argv[0], 0, &jerr);
	if (!req) {
		snprintf(err, errlen, "qmp: %s: %s", argv[0], jerr.text);
		return -EINVAL;
	}
	if (!json_is_string(json_object_get(req, "execute"))) {
		snprintf(err, errlen, "qmp: %s: needs an \"execute\" member naming the command",
			 argv[0]);
		json_decref(req);
		return -EINVAL;
	}
	*out = req;
	return 0;
}

/* ---- printers ---- */

static void ctl_print_json(json_t *ret)
{
	char *text;

	if (json_is_object(ret) && json_object_size(ret) == 0)
		return;
	text = json_dumps(ret, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (text)
		printf("%s\n", text);
	free(text);
}

static void ctl_print_raw(json_t *ret)
{
	char *text = json_dumps(ret, JSON_INDENT(2) | JSON_ENCODE_ANY);

	if (text)
		printf("%s\n", text);
	free(text);
}

static void ctl_print_status(json_t *ret)
{
	const char *status = json_string_value(json_object_get(ret, "status"));
	json_t *running = json_object_get(ret, "running");

	if (status)
		printf("%s\n", status);
	else if (json_is_boolean(running))
		printf("%s\n", json_is_true(running) ? "running" : "paused");
	else
		ctl_print_json(ret);
}

static const struct ctl_cmd ctl_cmds[] = {
	{ "status", "", "print running or paused", "query-status",
	  CTL_DEFAULT_TIMEOUT_S, false, NULL, ctl_print_status },
	{ "pause", "", "stop the vCPUs", "stop",
	  CTL_DEFAULT_TIMEOUT_S, false, NULL, ctl_print_json },
	{ "resume", "", "let the vCPUs run again", "cont",
	  CTL_DEFAULT_TIMEOUT_S, false, NULL, ctl_print_json },
	{ "powerdown", "", "press the ACPI power button", "system_powerdown",
	  CTL_DEFAULT_TIMEOUT_S, false, NULL, ctl_print_json },
	{ "quit", "", "end the VM and amber at once", "quit",
	  CTL_DEFAULT_TIMEOUT_S, true, NULL, ctl_print_json },
	{ "checkpoint", "DIR [--then resume|stop|quit] [--force]",
	  "write a checkpoint of the VM to DIR", "checkpoint",
	  600, false, ctl_build_checkpoint, ctl_print_json },
	{ "qmp", "JSON", "send one raw QMP request, print its return value", NULL,
	  CTL_DEFAULT_TIMEOUT_S, false, ctl_build_raw, ctl_print_raw },
};

static void ctl_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: amber ctl [--timeout S] PATH COMMAND [ARGS]\n"
		   "  PATH is the control socket of a running amber.\n"
		   "commands:\n");
	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		char head[96];

		snprintf(head, sizeof(head), "%s %s", ctl_cmds[i].name, ctl_cmds[i].args_usage);
		fprintf(f, "  %-50s %s\n", head, ctl_cmds[i].help);
	}
	fprintf(f, "  --timeout S: give up after S seconds (default %.0f, checkpoint 600)\n",
		CTL_DEFAULT_TIMEOUT_S);
}

/* ---- connection ---- */

static int ctl_ms_left(const struct ctl_conn *c)
{
	struct timespec now;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (c->deadline.tv_sec - now.tv_sec) * 1e3 + (c->deadline.tv_nsec - now.tv_nsec) / 1e6;
	if (ms <= 0)
		return 0;
	return ms > 1e9 ? 1000000000 : (int)ms + 1;
}

static int ctl_connect(struct ctl_conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(c->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -errno;
	for (;;) {
		int left;

		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return 0;
		/* EAGAIN: the server's backlog is full; it may drain soon. */
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		left = ctl_ms_left(c);
		if (left == 0)
			return -ETIMEDOUT;
		usleep((left < 10 ? left : 10) * 1000);
	}
}

static int ctl_send(struct ctl_conn *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len, done = 0;
	int ret = 0;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	text[len++] = '\n';	/* json_dumps' NUL byte becomes the line end */
	while (done < len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		ssize_t n = send(c->fd, text + done, len - done, MSG_NOSIGNAL);

		if (n >= 0) {
			done += n;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR) {
			ret = -errno;
			break;
		}
		if (poll(&pfd, 1, ctl_ms_left(c)) == 0) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	free(text);
	return ret;
}

/* Next message from the server: 0, -ETIMEDOUT, -EPIPE (hung up), -EPROTO. */
static int ctl_recv(struct ctl_conn *c, json_t **msg)
{
	char buf[65536], err[256];

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = json_stream_next(&c->in, msg, err, sizeof(err));
		ssize_t n;

		if (r > 0)
			return *msg ? 0 : -EPROTO;
		if (r < 0)
			return -EPROTO;
		r = poll(&pfd, 1, ctl_ms_left(c));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -ETIMEDOUT;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -EPIPE;
		if (json_stream_feed(&c->in, buf, n) < 0)
			return -ENOMEM;
	}
}

/* Wait for the reply carrying id, skipping events. */
static int ctl_wait_reply(struct ctl_conn *c, json_t *id, json_t **reply)
{
	for (;;) {
		json_t *msg;
		int r = ctl_recv(c, &msg);

		if (r < 0)
			return r;
		if (json_is_object(msg) && !json_object_get(msg, "event") &&
		    json_equal(json_object_get(msg, "id"), id)) {
			*reply = msg;
			return 0;
		}
		json_decref(msg);
	}
}

static void ctl_io_error(const struct ctl_conn *c, const char *what, int r, double timeout_s)
{
	if (r == -ETIMEDOUT)
		fprintf(stderr, "amber ctl: %s: no answer to %s within %g s\n", c->path, what,
			timeout_s);
	else if (r == -EPIPE)
		fprintf(stderr, "amber ctl: %s: the server closed the connection during %s\n",
			c->path, what);
	else if (r == -EPROTO)
		fprintf(stderr, "amber ctl: %s: malformed JSON from the server during %s\n",
			c->path, what);
	else
		fprintf(stderr, "amber ctl: %s: %s: %s\n", c->path, what, strerror(-r));
}

/* Send req, wait for its reply. CTL_OK with *ret, or an exit status after printing why. */
static int ctl_execute(struct ctl_conn *c, json_t *req, const char *what, double timeout_s,
		       bool eof_ok, json_t **ret)
{
	json_t *reply = NULL, *error;
	int r, status = CTL_FAIL;

	*ret = NULL;
	r = ctl_send(c, req);
	if (r == 0)
		r = ctl_wait_reply(c, json_object_get(req, "id"), &reply);
	if (r == -EPIPE && eof_ok) {
		*ret = json_object();
		return CTL_OK;
	}
	if (r < 0) {
		ctl_io_error(c, what, r, timeout_s);
		return CTL_FAIL;
	}
	error = json_object_get(reply, "error");
	if (error) {
		const char *desc = json_string_value(json_object_get(error, "desc"));
		const char *cls = json_string_value(json_object_get(error, "class"));

		bool generic = !cls || !strcmp(cls, "GenericError");

		fprintf(stderr, "amber ctl: %s: %s%s%s%s\n", what, desc ? desc : "failed",
			generic ? "" : " (", generic ? "" : cls, generic ? "" : ")");
		goto out;
	}
	if (!json_object_get(reply, "return")) {
		fprintf(stderr, "amber ctl: %s: reply to %s has neither return nor error\n",
			c->path, what);
		goto out;
	}
	*ret = json_incref(json_object_get(reply, "return"));
	status = CTL_OK;
out:
	json_decref(reply);
	return status;
}

int cli_ctl_main(int argc, char **argv)
{
	const struct ctl_cmd *cmd = NULL;
	struct ctl_conn conn = { .fd = -1 };
	double timeout_s = -1;
	char **pos, err[512] = "";
	json_t *greeting = NULL, *req = NULL, *args = NULL, *ret = NULL;
	const char *what;
	int npos = 0, i, r, status = CTL_USAGE;

	/* --timeout may appear anywhere: no subcommand has an option of that name. */
	pos = calloc(argc + 1, sizeof(*pos));
	if (!pos)
		return CTL_FAIL;
	for (i = 1; i < argc; i++) {
		const char *val = NULL;
		char *end;

		if (npos < 2 && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
			ctl_usage(stdout);
			status = CTL_OK;
			goto out;
		}
		if (!strcmp(argv[i], "--timeout")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "amber ctl: --timeout needs a number of seconds\n");
				goto out;
			}
			val = argv[++i];
		} else if (!strncmp(argv[i], "--timeout=", 10)) {
			val = argv[i] + 10;
		} else {
			pos[npos++] = argv[i];
			continue;
		}
		timeout_s = strtod(val, &end);
		if (end == val || *end || !(timeout_s > 0) || timeout_s > 86400 * 365) {
			fprintf(stderr, "amber ctl: --timeout %s: expected a positive number of seconds\n",
				val);
			goto out;
		}
	}
	if (npos < 2) {
		ctl_usage(stderr);
		goto out;
	}
	conn.path = pos[0];
	for (i = 0; i < (int)(sizeof(ctl_cmds) / sizeof(ctl_cmds[0])); i++)
		if (!strcmp(ctl_cmds[i].name, pos[1]))
			cmd = &ctl_cmds[i];
	if (!cmd) {
		fprintf(stderr, "amber ctl: unknown command %s\n", pos[1]);
		ctl_usage(stderr);
		goto out;
	}
	if (!cmd->build && npos > 2) {
		fprintf(stderr, "amber ctl: %s takes no arguments (got %s)\n", cmd->name, pos[2]);
		goto out;
	}
	if (cmd->build && cmd->build(npos - 2, pos + 2, &args, err, sizeof(err)) < 0) {
		fprintf(stderr, "amber ctl: %s\n", err);
		fprintf(stderr, "usage: amber ctl PATH %s %s\n", cmd->name, cmd->args_usage);
		goto out;
	}
	if (cmd->qmp) {
		req = json_pack("{s:s,s:s}", "execute", cmd->qmp, "id", CTL_ID);
		if (req && args)
			json_object_set(req, "arguments", args);
	} else {
		req = json_incref(args);
		if (!json_object_get(req, "id"))
			json_object_set_new(req, "id", json_string(CTL_ID));
	}
	status = CTL_FAIL;
	if (!req)
		goto out;
	what = json_string_value(json_object_get(req, "execute"));
	if (timeout_s < 0)
		timeout_s = cmd->timeout_s;

	clock_gettime(CLOCK_MONOTONIC, &conn.deadline);
	conn.deadline.tv_sec += (time_t)timeout_s;
	conn.deadline.tv_nsec += (long)((timeout_s - (time_t)timeout_s) * 1e9);
	if (conn.deadline.tv_nsec >= 1000000000) {
		conn.deadline.tv_sec++;
		conn.deadline.tv_nsec -= 1000000000;
	}
	json_stream_init(&conn.in, CONTROL_MAX_INPUT);
	r = ctl_connect(&conn);
	if (r < 0) {
		fprintf(stderr, "amber ctl: cannot connect to control socket %s: %s\n", conn.path,
			strerror(-r));
		goto out_conn;
	}
	/* QMP spec §2.2: the server speaks first. */
	r = ctl_recv(&conn, &greeting);
	if (r < 0) {
		ctl_io_error(&conn, "the greeting", r, timeout_s);
		goto out_conn;
	}
	if (!json_is_object(json_object_get(greeting, "QMP"))) {
		fprintf(stderr, "amber ctl: %s: not a QMP server (no greeting)\n", conn.path);
		goto out_conn;
	}
	{
		json_t *neg = json_pack("{s:s,s:s}", "execute", "qmp_capabilities",
					"id", CTL_ID "-negotiate");

		status = neg ? ctl_execute(&conn, neg, "qmp_capabilities", timeout_s, false, &ret)
			     : CTL_FAIL;
		json_decref(neg);
		json_decref(ret);
		ret = NULL;
		if (status != CTL_OK)
			goto out_conn;
	}
	status = ctl_execute(&conn, req, what, timeout_s, cmd->eof_ok, &ret);
	if (status == CTL_OK)
		cmd->print(ret);
	fflush(stdout);
out_conn:
	if (conn.fd >= 0)
		close(conn.fd);
	json_stream_destroy(&conn.in);
out:
	json_decref(ret);
	json_decref(greeting);
	json_decref(req);
	json_decref(args);
	free(pos);
	return status;
}
