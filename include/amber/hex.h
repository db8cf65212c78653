/* Hexadecimal digits, for the text protocols (GDB remote, PCI addresses). */
#ifndef AMBER_HEX_H
#define AMBER_HEX_H

/* The value of hex digit c (either case), or -1 if c is not one. */
static inline int hex_digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
