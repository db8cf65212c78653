/* The machine configuration: `amber run` options, and the same as JSON. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "amber/config.h"

void config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->memory = CONFIG_DEFAULT_MEM;
}

void config_free(struct vm_config *c)
{
	free(c->name);
	free(c->kernel);
	free(c->initrd);
	free(c->cmdline);
	free(c->firmware);
	free(c->serial);
	free(c->control);
	free(c->debugcon);
	free(c->gdb);
	free(c->boot_order);
	free(c->restore);
	free(c->incoming);
	for (int i = 0; i < c->ndisks; i++) {
		free(c->disks[i].path);
		free(c->disks[i].serial);
		free(c->disks[i].ctrl);
	}
	for (int i = 0; i < c->nfwcfg; i++) {
		free(c->fwcfg[i].name);
		free(c->fwcfg[i].path);
	}
	config_init(c);
}

int config_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		goto bad;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: goto bad;
	}
	if (*end == 'i' || *end == 'B') {
		if (*end == 'i')
			end++;
		if (*end == 'B')
			end++;
	}
	if (*end)
		goto bad;
	if (shift && v > (ULLONG_MAX >> shift)) {
		snprintf(err, errlen, "size \"%s\" is too large", s);
		return -EINVAL;
	}
	*out = v << shift;
	return 0;
bad:
	snprintf(err, errlen, "\"%s\" is not a size (a number with an optional K, M or G suffix)", s ? s : "");
	return -EINVAL;
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -EINVAL;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s %s: is a directory", what, path);
		return -EINVAL;
	}
	if (access(path, R_OK) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* nvme:PATH[,ro][,serial=S][,ctrl=NAME][,direct] */
static int parse_disk(struct vm_config *c, const char *spec, char *err, size_t errlen)
{
	struct disk_config *d;
	char *copy, *tok, *save = NULL;
	int ret = -EINVAL;

	if (c->ndisks == CONFIG_MAX_DISKS) {
		snprintf(err, errlen, "--disk: at most %d disks", CONFIG_MAX_DISKS);
		return -EINVAL;
	}
	if (strncmp(spec, "nvme:", 5) != 0) {
		snprintf(err, errlen, "--disk %s: expected nvme:PATH[,ro][,serial=S][,ctrl=NAME][,direct]", spec);
		return -EINVAL;
	}
	copy = strdup(spec + 5);
	if (!copy)
		return -ENOMEM;
	d = &c->disks[c->ndisks];
	memset(d, 0, sizeof(*d));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!d->path) {
			d->path = strdup(tok);
		} else if (strcmp(tok, "ro") == 0) {
			d->readonly = true;
		} else if (strcmp(tok, "direct") == 0) {
			d->direct = true;
		} else if (strncmp(tok, "serial=", 7) == 0 && tok[7]) {
			if (strlen(tok + 7) > 20) {
				snprintf(err, errlen, "--disk %s: serial is longer than 20 characters", spec);
				goto fail;
			}
			d->serial = strdup(tok + 7);
		} else if (strncmp(tok, "ctrl=", 5) == 0 && tok[5]) {
			d->ctrl = strdup(tok + 5);
		} else {
			snprintf(err, errlen, "--disk %s: unknown option \"%s\"", spec, tok);
			goto fail;
		}
	}
	if (!d->path) {
		snprintf(err, errlen, "--disk %s: no path", spec);
		goto fail;
	}
	if (!d->ctrl)
		d->ctrl = strdup("nvme0");
	if (check_readable("disk", d->path, err, errlen) < 0)
		goto fail;
	c->ndisks++;
	ret = 0;
	goto out;
fail:
	free(d->path);
	free(d->serial);
	free(d->ctrl);
	memset(d, 0, sizeof(*d));
out:
	free(copy);
	return ret;
}

/* name=opt/NAME,file=PATH */
static int parse_fwcfg(struct vm_config *c, const char *spec, char *err, size_t errlen)
{
	const char *n = strstr(spec, "name="), *f = strstr(spec, "file=");
	struct fwcfg_file_config *fc;

	if (c->nfwcfg == CONFIG_MAX_FWCFG) {
		snprintf(err, errlen, "--fw-cfg: at most %d items", CONFIG_MAX_FWCFG);
		return -EINVAL;
	}
	if (!n || !f || n != spec) {
		snprintf(err, errlen, "--fw-cfg %s: expected name=opt/NAME,file=PATH", spec);
		return -EINVAL;
	}
	fc = &c->fwcfg[c->nfwcfg];
	fc->name = strndup(n + 5, strcspn(n + 5, ","));
	fc->path = strdup(f + 5);
	if (!fc->name || !fc->path)
		return -ENOMEM;
	if (strncmp(fc->name, "opt/", 4) != 0 || strlen(fc->name) >= 56) {
		snprintf(err, errlen, "--fw-cfg %s: name must start with opt/ and be shorter than 56 bytes", spec);
		goto fail;
	}
	if (check_readable("fw-cfg file", fc->path, err, errlen) < 0)
		goto fail;
	c->nfwcfg++;
	return 0;
fail:
	free(fc->name);
	free(fc->path);
	memset(fc, 0, sizeof(*fc));
	return -EINVAL;
}

static const char *const run_options[] = {
	"kernel", "initrd", "cmdline", "cpus", "memory", "serial", "control", "name",
	"on-reboot", "disk", "firmware", "debugcon", "fw-cfg", "boot-order", "gdb",
	"restore", "clock", "restore-mode", "incoming", NULL
};
static const char *const run_flags[] = { "gdb-wait", NULL };

static bool in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcmp(*l, s) == 0)
			return true;
	return false;
}

static int parse_serial(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "stdio") == 0 || strcmp(v, "none") == 0)
		return 0;
	if (strncmp(v, "file:", 5) == 0 && v[5])
		return 0;
	snprintf(err, errlen, "--serial %s: expected stdio, file:PATH or none", v);
	return -EINVAL;
}

int config_parse_run(struct vm_config *c, int argc, char **argv, int max_cpus,
		     char *err, size_t errlen)
{
	bool have_cpus = false, have_mem = false;

	for (int i = 1; i < argc; i++) {
		char name[32];
		const char *arg = argv[i], *val = NULL, *eq;
		int ret = 0;

		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument \"%s\" (options start with --)", arg);
			return -EINVAL;
		}
		eq = strchr(arg, '=');
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - arg - 2) : (int)strlen(arg + 2), arg + 2);
		if (in_list(run_flags, name)) {
			if (eq) {
				snprintf(err, errlen, "--%s takes no value", name);
				return -EINVAL;
			}
			if (strcmp(name, "gdb-wait") == 0)
				c->gdb_wait = true;
			continue;
		}
		if (!in_list(run_options, name)) {
			snprintf(err, errlen, "unknown option \"%s\" (see amber help run)", arg);
			return -EINVAL;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "--%s needs a value", name);
			return -EINVAL;
		}

		if (!strcmp(name, "kernel")) {
			ret = check_readable("kernel", val, err, errlen) ?: set_str(&c->kernel, val);
		} else if (!strcmp(name, "initrd")) {
			ret = check_readable("initrd", val, err, errlen) ?: set_str(&c->initrd, val);
		} else if (!strcmp(name, "firmware")) {
			ret = check_readable("firmware", val, err, errlen) ?: set_str(&c->firmware, val);
		} else if (!strcmp(name, "cmdline")) {
			if (strlen(val) > 4095) {
				snprintf(err, errlen, "--cmdline is longer than 4095 bytes");
				return -EINVAL;
			}
			ret = set_str(&c->cmdline, val);
		} else if (!strcmp(name, "cpus")) {
			char *end;
			long n;

			errno = 0;
			n = strtol(val, &end, 10);
			if (errno || end == val || *end || n < 1) {
				snprintf(err, errlen, "--cpus %s: expected a number from 1 to %d", val, max_cpus);
				return -EINVAL;
			}
			if (n > max_cpus) {
				snprintf(err, errlen, "--cpus %s: this host allows at most %d vCPUs", val, max_cpus);
				return -EINVAL;
			}
			c->cpus = (int)n;
			have_cpus = true;
		} else if (!strcmp(name, "memory")) {
			uint64_t m;

			if (config_parse_size(val, &m, err, errlen) < 0)
				return -EINVAL;
			if (m < (16ULL << 20) || m % (2ULL << 20) || m > (1ULL << 40)) {
				snprintf(err, errlen, "--memory %s: must be a multiple of 2M between 16M and 1T", val);
				return -EINVAL;
			}
			c->memory = m;
			have_mem = true;
		} else if (!strcmp(name, "serial")) {
			ret = parse_serial(val, err, errlen) ?: set_str(&c->serial, val);
		} else if (!strcmp(name, "control")) {
			ret = set_str(&c->control, val);
		} else if (!strcmp(name, "name")) {
			ret = set_str(&c->name, val);
		} else if (!strcmp(name, "on-reboot")) {
			if (!strcmp(val, "exit"))
				c->on_reboot = ON_REBOOT_EXIT;
			else if (!strcmp(val, "restart"))
				c->on_reboot = ON_REBOOT_RESTART;
			else {
				snprintf(err, errlen, "--on-reboot %s: expected exit or restart", val);
				return -EINVAL;
			}
		} else if (!strcmp(name, "disk")) {
			ret = parse_disk(c, val, err, errlen);
		} else if (!strcmp(name, "debugcon")) {
			ret = parse_serial(val, err, errlen) ?: set_str(&c->debugcon, val);
		} else if (!strcmp(name, "fw-cfg")) {
			ret = parse_fwcfg(c, val, err, errlen);
		} else if (!strcmp(name, "boot-order")) {
			ret = set_str(&c->boot_order, val);
		} else if (!strcmp(name, "gdb")) {
			ret = set_str(&c->gdb, val);
		} else if (!strcmp(name, "restore")) {
			ret = set_str(&c->restore, val);
		} else if (!strcmp(name, "incoming")) {
			ret = set_str(&c->incoming, val);
		} else if (!strcmp(name, "clock")) {
			if (!strcmp(val, "freeze"))
				c->clock_advance = false;
			else if (!strcmp(val, "advance"))
				c->clock_advance = true;
			else {
				snprintf(err, errlen, "--clock %s: expected freeze or advance", val);
				return -EINVAL;
			}
		} else if (!strcmp(name, "restore-mode")) {
			if (!strcmp(val, "lazy"))
				c->restore_copy = false;
			else if (!strcmp(val, "copy"))
				c->restore_copy = true;
			else {
				snprintf(err, errlen, "--restore-mode %s: expected lazy or copy", val);
				return -EINVAL;
			}
		}
		if (ret)
			return ret == -ENOMEM ? -ENOMEM : -EINVAL;
	}

	if (c->restore || c->incoming) {
		if (c->kernel || c->firmware || have_cpus || have_mem || c->ndisks) {
			snprintf(err, errlen, "--%s takes the machine from the checkpoint: "
				 "--kernel, --firmware, --cpus, --memory and --disk cannot be given with it",
				 c->restore ? "restore" : "incoming");
			return -EINVAL;
		}
		return 0;
	}
	if (!c->kernel && !c->firmware) {
		snprintf(err, errlen, "--kernel PATH (or --firmware PATH) is required");
		return -EINVAL;
	}
	if ((c->initrd || c->cmdline) && !c->kernel) {
		snprintf(err, errlen, "--initrd and --cmdline need --kernel");
		return -EINVAL;
	}
	if (!c->serial)
		c->serial = strdup("stdio");
	return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

static void put_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v ? json_string(v) : json_null());
}

json_t *config_to_json(const struct vm_config *c)
{
	json_t *o = json_object(), *disks = json_array(), *fw = json_array();

	put_str(o, "name", c->name);
	put_str(o, "kernel", c->kernel);
	put_str(o, "initrd", c->initrd);
	put_str(o, "cmdline", c->cmdline);
	put_str(o, "firmware", c->firmware);
	json_object_set_new(o, "cpus", json_integer(c->cpus));
	json_object_set_new(o, "memory", json_integer((json_int_t)c->memory));
	put_str(o, "serial", c->serial);
	put_str(o, "debugcon", c->debugcon);
	put_str(o, "boot_order", c->boot_order);
	json_object_set_new(o, "on_reboot", json_string(c->on_reboot == ON_REBOOT_RESTART ? "restart" : "exit"));
	for (int i = 0; i < c->ndisks; i++) {
		json_t *d = json_object();

		put_str(d, "path", c->disks[i].path);
		json_object_set_new(d, "readonly", json_boolean(c->disks[i].readonly));
		put_str(d, "serial", c->disks[i].serial);
		put_str(d, "ctrl", c->disks[i].ctrl);
		if (c->disks[i].direct)
			json_object_set_new(d, "direct", json_true());
		json_array_append_new(disks, d);
	}
	json_object_set_new(o, "disks", disks);
	for (int i = 0; i < c->nfwcfg; i++) {
		json_t *f = json_object();

		put_str(f, "name", c->fwcfg[i].name);
		put_str(f, "path", c->fwcfg[i].path);
		json_array_append_new(fw, f);
	}
	json_object_set_new(o, "fw_cfg", fw);
	return o;
}

static int get_str(const json_t *o, const char *k, char **dst, bool required, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v)) {
		if (required) {
			snprintf(err, errlen, "config.%s: missing", k);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "config.%s: expected a string", k);
		return -EINVAL;
	}
	return set_str(dst, json_string_value(v));
}

int config_from_json(struct vm_config *c, const json_t *j, char *err, size_t errlen)
{
	json_t *v, *disks, *fw;
	size_t i;

	if (!json_is_object(j)) {
		snprintf(err, errlen, "config: expected an object");
		return -EINVAL;
	}
	if (get_str(j, "name", &c->name, false, err, errlen) ||
	    get_str(j, "kernel", &c->kernel, false, err, errlen) ||
	    get_str(j, "initrd", &c->initrd, false, err, errlen) ||
	    get_str(j, "cmdline", &c->cmdline, false, err, errlen) ||
	    get_str(j, "firmware", &c->firmware, false, err, errlen) ||
	    get_str(j, "boot_order", &c->boot_order, false, err, errlen))
		return -EINVAL;
	/* Host-side options given on the command line win over the saved ones. */
	if (!c->serial && get_str(j, "serial", &c->serial, false, err, errlen))
		return -EINVAL;
	if (!c->debugcon && get_str(j, "debugcon", &c->debugcon, false, err, errlen))
		return -EINVAL;
	v = json_object_get(j, "cpus");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > CONFIG_MAX_CPUS) {
		snprintf(err, errlen, "config.cpus: expected an integer from 1 to %d", CONFIG_MAX_CPUS);
		return -EINVAL;
	}
	c->cpus = (int)json_integer_value(v);
	v = json_object_get(j, "memory");
	if (!json_is_integer(v) || json_integer_value(v) < (16 << 20) ||
	    json_integer_value(v) % (2 << 20)) {
		snprintf(err, errlen, "config.memory: expected a multiple of 2 MiB, at least 16 MiB");
		return -EINVAL;
	}
	c->memory = (uint64_t)json_integer_value(v);
	v = json_object_get(j, "on_reboot");
	c->on_reboot = json_is_string(v) && !strcmp(json_string_value(v), "restart") ?
		       ON_REBOOT_RESTART : ON_REBOOT_EXIT;
	disks = json_object_get(j, "disks");
	if (disks && !json_is_array(disks)) {
		snprintf(err, errlen, "config.disks: expected an array");
		return -EINVAL;
	}
	if (json_array_size(disks) > CONFIG_MAX_DISKS) {
		snprintf(err, errlen, "config.disks: more than %d disks", CONFIG_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, v) {
		struct disk_config *d = &c->disks[i];
		char path[64];

		snprintf(path, sizeof(path), "disks[%zu]", i);
		if (!json_is_object(v)) {
			snprintf(err, errlen, "config.%s: expected an object", path);
			return -EINVAL;
		}
		/* A path given again on the command line (disk moved) wins. */
		if (!d->path && get_str(v, "path", &d->path, true, err, errlen))
			return -EINVAL;
		if (get_str(v, "serial", &d->serial, false, err, errlen) ||
		    get_str(v, "ctrl", &d->ctrl, false, err, errlen))
			return -EINVAL;
		d->readonly = json_is_true(json_object_get(v, "readonly"));
		d->direct = json_is_true(json_object_get(v, "direct"));
		if (!d->ctrl)
			d->ctrl = strdup("nvme0");
		c->ndisks = (int)i + 1;
	}
	fw = json_object_get(j, "fw_cfg");
	if (json_array_size(fw) > CONFIG_MAX_FWCFG) {
		snprintf(err, errlen, "config.fw_cfg: more than %d items", CONFIG_MAX_FWCFG);
		return -EINVAL;
	}
	json_array_foreach(fw, i, v) {
		if (get_str(v, "name", &c->fwcfg[i].name, true, err, errlen) ||
		    get_str(v, "path", &c->fwcfg[i].path, true, err, errlen))
			return -EINVAL;
		c->nfwcfg = (int)i + 1;
	}
	return 0;
}
