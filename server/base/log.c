/* server/base/log.c: the server log, in Redis's line format
 *   pid:M 21 Nov 2026 16:25:06.123 * message
 * with level marks ". - * #" for debug, verbose, notice, warning. The file named by
 * `logfile` is opened for each line (as Redis does) so log rotation needs no signal;
 * an empty `logfile` means standard output. Logging is rare and never on the
 * request path except under loglevel debug.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "server/base/base.h"

static void log_raw(int level, const char *msg) {
    static const char marks[] = ".-*#";
    const char *file = server.logfile;
    int to_stdout = file == NULL || file[0] == '\0';
    FILE *fp = to_stdout ? stdout : fopen(file, "a");
    if (fp == NULL) {
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char when[64];
    size_t off = strftime(when, sizeof(when), "%d %b %Y %H:%M:%S.", &tm);
    snprintf(when + off, sizeof(when) - off, "%03d", (int)(tv.tv_usec / 1000));
    fprintf(fp, "%d:M %s %c %s\n", (int)getpid(), when, marks[level & 3], msg);
    fflush(fp);
    if (!to_stdout) {
        fclose(fp);
    }
}

void server_log(int level, const char *fmt, ...) {
    if (level < server.loglevel) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_raw(level, msg);
}
