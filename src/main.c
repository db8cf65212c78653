/* amber: a virtual machine monitor for Linux/KVM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/cli.h"
#include "amber/log.h"
#include "amber/vm_stats.h"

static const char usage_main[] =
	"usage: amber COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  run       boot a virtual machine (or restore one from a checkpoint)\n"
	"  ctl       talk to a running amber through its control socket\n"
	"  inspect   summarize and verify a checkpoint\n"
	"  help      help on a command: amber help run\n"
	"\n"
	"amber --version prints the version.\n";

static const char usage_run[] =
	"usage: amber run --kernel PATH [--initrd PATH] [--cmdline STR] [--cpus N]\n"
	"                 [--memory SIZE] [--serial stdio|file:PATH|none] [--control PATH]\n"
	"                 [--name NAME] [--on-reboot exit|restart] [--disk nvme:PATH[,ro][,serial=S][,ctrl=NAME][,direct]]\n"
	"                 [--firmware PATH] [--debugcon file:PATH|stdio] [--fw-cfg name=opt/NAME,file=PATH]\n"
	"                 [--boot-order LIST]\n"
	"                 [--gdb tcp:HOST:PORT|unix:PATH] [--gdb-wait]\n"
	"       amber run --restore DIR [--clock freeze|advance] [--restore-mode lazy|copy]\n"
	"                 [--serial ...] [--control PATH]\n"
	"\n"
	"  --kernel PATH     Linux bzImage (64-bit boot protocol) or ELF vmlinux with a PVH note\n"
	"  --memory SIZE     guest RAM with K/M/G suffix (default 256M); RAM above the\n"
	"                    32-bit PCI hole (3 GiB) is placed above 4 GiB\n"
	"  --cpus N          vCPUs, 1 to the host's KVM limit (default 1)\n"
	"  --serial SPEC     where COM1 goes (default stdio; on a terminal, Ctrl-A x quits)\n"
	"  --control PATH    QMP control socket (amber ctl PATH ..., or any QMP client)\n"
	"  --on-reboot WHAT  exit (default) or restart when the guest reboots\n"
	"  --disk nvme:PATH  NVMe namespace on a raw image or block device: ro, serial=S,\n"
	"                    ctrl=NAME (disks of one controller are its namespaces 1..N),\n"
	"                    direct (O_DIRECT: the host page cache is bypassed)\n"
	"  --firmware PATH   boot through an unmodified firmware image (Debian's OVMF.fd,\n"
	"                    SeaBIOS bios-256k.bin) with QEMU's fw_cfg; with --kernel it\n"
	"                    loads that kernel, without it the firmware boots from --disk\n"
	"  --debugcon SPEC   debug console on port 0x402 (SeaBIOS's log; OVMF debug builds)\n"
	"  --fw-cfg name=opt/NAME,file=PATH  a host file as the fw_cfg file opt/NAME\n"
	"  --boot-order LIST firmware boot order (fw_cfg \"bootorder\"), comma-separated:\n"
	"                    an NVMe controller (nvme0, or ctrl=NAME of --disk; NAME:N\n"
	"                    for namespace N) or an OpenFirmware path such as\n"
	"                    /pci@i0cf8/pci8086,5845@2/namespace@1,0. Named devices boot\n"
	"                    first; OVMF then ignores the disks not named\n"
	"\n"
	"exit status: 0 guest powered off (or rebooted) or quit; 2 bad command line;\n"
	"3 the VM could not be created; 4 the guest crashed (triple fault);\n"
	"5 KVM internal error.\n";

static const char usage_ctl[] =
	"usage: amber ctl SOCKET COMMAND [ARGS]\n"
	"  status | pause | resume | quit | powerdown\n"
	"  checkpoint DIR [--then resume|stop|quit] [--force]\n"
	"  qmp JSON      send one raw QMP command\n";

static const char usage_inspect[] =
	"usage: amber inspect DIR [--json] [--verify]\n";

static int help(const char *cmd)
{
	if (!cmd) {
		fputs(usage_main, stdout);
	} else if (!strcmp(cmd, "run")) {
		fputs(usage_run, stdout);
	} else if (!strcmp(cmd, "ctl")) {
		fputs(usage_ctl, stdout);
	} else if (!strcmp(cmd, "inspect")) {
		fputs(usage_inspect, stdout);
	} else {
		fprintf(stderr, "amber help: unknown command \"%s\"\n", cmd);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *lvl = getenv("AMBER_LOG");

	/* AMBER_LOG=debug: the debug lines too (measurements, troubleshooting) */
	if (lvl && !strcmp(lvl, "debug"))
		log_threshold = LOG_DEBUG;
	vm_stats_init();
	if (argc < 2) {
		fputs(usage_main, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("amber %s\n", AMBER_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return help(argc > 2 ? argv[2] : NULL);
	if (!strcmp(argv[1], "run"))
		return cli_run_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cli_ctl_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return cli_inspect_main(argc - 1, argv + 1);
	fprintf(stderr, "amber: unknown command \"%s\" (see amber help)\n", argv[1]);
	return 2;
}
