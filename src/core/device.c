/* Device registry (linker set), instance creation and option strings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/device.h"
#include "amber/machine.h"

/* Bounds of the "amber_devclasses" section, provided by the linker. */
extern const struct device_class *const __start_amber_devclasses[] __attribute__((weak));
extern const struct device_class *const __stop_amber_devclasses[] __attribute__((weak));

const struct device_class *device_class_find(const char *name)
{
	for (const struct device_class *const *c = __start_amber_devclasses;
	     c && c < __stop_amber_devclasses; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

void device_class_foreach(void (*fn)(const struct device_class *, void *), void *opaque)
{
	for (const struct device_class *const *c = __start_amber_devclasses;
	     c && c < __stop_amber_devclasses; c++)
		fn(*c, opaque);
}

int device_create(struct machine *m, const char *cls_name, const char *id,
		  const char *args, struct device **out, char *err, size_t errlen)
{
	const struct device_class *cls = device_class_find(cls_name);
	struct device *dev, **tail;
	int ret;

	if (!cls) {
		snprintf(err, errlen, "unknown device type \"%s\"", cls_name);
		return -ENOENT;
	}
	if (device_find(m, id)) {
		snprintf(err, errlen, "device id \"%s\" is used twice", id);
		return -EEXIST;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->cls = cls;
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	dev->args = args ? strdup(args) : NULL;
	dev->machine = m;
	ret = cls->realize ? cls->realize(dev, m, args) : 0;
	if (ret < 0) {
		snprintf(err, errlen, "device %s (%s): %s", id, cls_name, strerror(-ret));
		free(dev->args);
		free(dev);
		return ret;
	}
	for (tail = &m->devices; *tail; tail = &(*tail)->next)
		;
	*tail = dev;
	if (out)
		*out = dev;
	return 0;
}

struct device *device_find(struct machine *m, const char *id)
{
	for (struct device *d = m->devices; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

void device_destroy_all(struct machine *m)
{
	struct device *d = m->devices;

	while (d) {
		struct device *next = d->next;

		if (d->cls->unrealize)
			d->cls->unrealize(d);
		free(d->args);
		free(d);
		d = next;
	}
	m->devices = NULL;
}

/* "key=value,flag,..." lookups. Values cannot contain commas. */
int opt_get(const char *args, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = args;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n >= klen && strncmp(p, key, klen) == 0 && (n == klen || p[klen] == '=')) {
			const char *v = n == klen ? p + n : p + klen + 1;
			size_t vlen = n == klen ? 0 : n - klen - 1;

			if (vlen + 1 > len)
				return -ENAMETOOLONG;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return 1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int opt_check_keys(const char *args, const char *const *allowed, char *err, size_t errlen)
{
	const char *p = args;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		size_t klen = eq ? (size_t)(eq - p) : n;
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			if (strlen(*a) == klen && strncmp(*a, p, klen) == 0)
				ok = true;
		if (!ok) {
			snprintf(err, errlen, "unknown option \"%.*s\"", (int)klen, p);
			return -EINVAL;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}
