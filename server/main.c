/* server/main.c: kvd's entry point, as redis-server's:
 *   kvd [/path/to/kv.conf] [--directive value ...]
 *   kvd --help | --version | --help-config
 */
#include <stdio.h>
#include <string.h>

#include "server/net/net.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "Usage: kvd [/path/to/kv.conf] [options]\n"
            "       kvd - (read config from stdin)\n"
            "       kvd -v or --version\n"
            "       kvd -h or --help\n"
            "       kvd --help-config   (every directive, its type and default)\n\n"
            "Examples:\n"
            "       kvd (run with the default configuration)\n"
            "       kvd kv.conf\n"
            "       kvd --port 7777\n"
            "       kvd kv.conf --loglevel verbose --requirepass secret\n");
}

int main(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("kvd v=%s redis-compat=%s bits=%d\n", KVD_VERSION, KVD_REDIS_COMPAT_VERSION,
               (int)(sizeof(long) * 8));
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    config_init();
    if (argc == 2 && strcmp(argv[1], "--help-config") == 0) {
        config_print_help(stdout);
        config_deinit();
        return 0;
    }
    if (config_load_argv(argc, argv) != 0) {
        config_deinit();
        return 1;
    }
    if (server_start() != 0) {
        server_stop();
        return 1;
    }
    net_main_loop();
    server_log(LL_WARNING, "User requested shutdown...");
    server_stop();
    return 0;
}
