/* Guest-initiated power events and the virtual power button. */
#include "amber/machine.h"

void machine_request(struct machine *m, enum machine_event ev)
{
	m->last_event = (int)ev;
	if (m->on_event)
		m->on_event(m, (int)ev);
}

void machine_set_powerbutton(struct machine *m, void (*press)(void *), void *opaque)
{
	m->powerbutton = press;
	m->powerbutton_opaque = opaque;
}

void machine_press_powerbutton(struct machine *m)
{
	if (m->powerbutton)
		m->powerbutton(m->powerbutton_opaque);
}
