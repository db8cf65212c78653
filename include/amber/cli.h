/* Subcommands of the amber program (src/cli/). Each returns the exit code. */
#ifndef AMBER_CLI_H
#define AMBER_CLI_H

int cli_run_main(int argc, char **argv);
int cli_ctl_main(int argc, char **argv);
int cli_inspect_main(int argc, char **argv);

#endif
