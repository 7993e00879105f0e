/* server/cmd_stubs.c: TEMPORARY weak placeholders so the server links while command
 * families are written in parallel. A family's real cmd_* (a strong symbol) replaces
 * its placeholder at link time (libserver.a is linked whole-archive). This file is
 * deleted once every family exists. */
#include "server/server.h"

#define CMD(id, name, arity, flags, first, last, step, group, summary)            \
    __attribute__((weak)) void cmd_##id(struct client *c) {                      \
        reply_error(c, "ERR command not implemented yet");                        \
    }
#include "server/commands.def"
#undef CMD
