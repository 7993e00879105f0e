/* server/cmd/cmd_info.c: INFO: the text of every section (Server ... Keyspace,
 * Commandstats, Errorstats, kvd's Engine), the run id, the instantaneous
 * metrics sampled from the cron, and the statistics reset of CONFIG RESETSTAT.
 * Field names are Redis 7.0's, so tools that parse INFO work unchanged. The
 * counters themselves are kept where they happen (commands.c, client.c, ks*.c,
 * persist.c); this file only reads and formats them.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "server/cmd/cmd.h"

static char run_id_buf[41];
static char replid_buf[41];
static size_t used_memory_startup;

static void random_hex(char *dst, size_t n) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, raw, n) : -1;
    if (fd >= 0) {
        close(fd);
    }
    if (got != (ssize_t)n) {
        srand((unsigned)(time(NULL) ^ getpid()));
        for (size_t i = 0; i < n; i++) {
            raw[i] = (unsigned char)rand();
        }
    }
    for (size_t i = 0; i < n; i++) {
        dst[i] = hex[raw[i] & 15];
    }
    dst[n] = '\0';
}

void info_init(void) {
    random_hex(run_id_buf, 40);
    random_hex(replid_buf, 40);
    used_memory_startup = kv_used_memory();
}

/* ------------------------------------------------------------------------------
 * Instantaneous metrics: sampled every 100 ms from the cron, averaged over the
 * last 16 samples, as Redis's trackInstantaneousMetric.
 * ------------------------------------------------------------------------------ */
#define METRIC_SAMPLES 16
enum { METRIC_OPS, METRIC_IN, METRIC_OUT, METRIC_COUNT };
static struct {
    long long last_ms, last_value;
    long long samples[METRIC_SAMPLES];
    int idx;
} metrics[METRIC_COUNT];

static void track_metric(int m, long long value, long long now) {
    long long dt = now - metrics[m].last_ms;
    long long dv = value - metrics[m].last_value;
    metrics[m].samples[metrics[m].idx] = dt > 0 ? dv * 1000 / dt : 0;
    metrics[m].idx = (metrics[m].idx + 1) % METRIC_SAMPLES;
    metrics[m].last_ms = now;
    metrics[m].last_value = value;
}

static long long metric(int m) {
    long long sum = 0;
    for (int i = 0; i < METRIC_SAMPLES; i++) {
        sum += metrics[m].samples[i];
    }
    return sum / METRIC_SAMPLES;
}

void stats_cron(void) {
    long long now = server.mstime;
    if (now - metrics[METRIC_OPS].last_ms < 100) {
        return;
    }
    track_metric(METRIC_OPS, server.stat_numcommands, now);
    track_metric(METRIC_IN, server.stat_net_input_bytes, now);
    track_metric(METRIC_OUT, server.stat_net_output_bytes, now);
}

void info_reset_stats(void) {
    server.stat_numcommands = 0;
    server.stat_numconnections = 0;
    server.stat_rejected_conn = 0;
    server.stat_keyspace_hits = 0;
    server.stat_keyspace_misses = 0;
    server.stat_expiredkeys = 0;
    server.stat_evictedkeys = 0;
    server.stat_net_input_bytes = 0;
    server.stat_net_output_bytes = 0;
    server.stat_total_error_replies = 0;
    server.stat_unexpected_error_replies = 0;
    server.stat_total_reads = 0;
    server.stat_total_writes = 0;
    server.stat_peak_memory = kv_used_memory();
    memset(metrics, 0, sizeof(metrics));
    commands_reset_stats();
}

/* ------------------------------------------------------------------------------
 * INFO
 * ------------------------------------------------------------------------------ */
struct sb {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = kv_realloc(b->p, b->cap);
    }
}

static size_t rss_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp == NULL) {
        return 0;
    }
    unsigned long size = 0, resident = 0;
    int ok = fscanf(fp, "%lu %lu", &size, &resident) == 2;
    fclose(fp);
    return ok ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static void info_server(struct sb *b) {
    struct utsname un;
    uname(&un);
    long long uptime = (server.mstime - server.start_ms) / 1000;
    char exe[PATH_MAX];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[el > 0 ? el : 0] = '\0';
    sb_printf(b,
              "# Server\r\n"
              "redis_version:%s\r\n"
              "redis_git_sha1:00000000\r\n"
              "redis_git_dirty:0\r\n"
              "redis_build_id:0\r\n"
              "redis_mode:standalone\r\n"
              "os:%s %s %s\r\n"
              "arch_bits:%d\r\n"
              "monotonic_clock:POSIX clock_gettime\r\n"
              "multiplexing_api:%s\r\n"
              "atomicvar_api:c11-builtin\r\n"
              "gcc_version:%d.%d.%d\r\n"
              "process_id:%d\r\n"
              "process_supervised:no\r\n"
              "run_id:%s\r\n"
              "tcp_port:%d\r\n"
              "server_time_usec:%lld\r\n"
              "uptime_in_seconds:%lld\r\n"
              "uptime_in_days:%lld\r\n"
              "hz:%d\r\n"
              "configured_hz:%d\r\n"
              "lru_clock:%lld\r\n"
              "executable:%s\r\n"
              "config_file:%s\r\n"
              "io_threads_active:0\r\n"
              "kvd_version:%s\r\n"
              "kvd_mode:%s\r\n"
              "node_id:%s\r\n",
              KVD_REDIS_COMPAT_VERSION, un.sysname, un.release, un.machine,
              (int)(sizeof(long) * 8), server.base ? event_base_get_method(server.base) : "",
#ifdef __GNUC__
              __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__,
#else
              0, 0, 0,
#endif
              (int)getpid(), run_id_buf, net_bound_port, server.ustime, uptime, uptime / 86400,
              server.hz, server.hz, (server.mstime / 1000) & ((1 << 24) - 1), exe,
              server.config_file ? server.config_file : "", KVD_VERSION,
              server.mode == MODE_CACHE ? "cache" : "persistent", server.node_id);
}

static void info_clients(struct sb *b) {
    size_t max_in = 0, max_out = 0;
    for (struct client *c = server.clients; c; c = c->next) {
        if (c->qcap > max_in) max_in = c->qcap;
        size_t o = resp_out_pending(&c->out);
        if (o > max_out) max_out = o;
    }
    sb_printf(b,
              "# Clients\r\n"
              "connected_clients:%d\r\n"
              "cluster_connections:0\r\n"
              "maxclients:%lld\r\n"
              "client_recent_max_input_buffer:%zu\r\n"
              "client_recent_max_output_buffer:%zu\r\n"
              "blocked_clients:0\r\n"
              "tracking_clients:0\r\n"
              "clients_in_timeout_table:0\r\n",
              server.nclients, server.maxclients, max_in, max_out);
}

static const char *policy_name(int p) {
    char buf[64];
    static char out[64];
    if (config_ops.get_value("maxmemory-policy", buf, sizeof(buf)) != 0) {
        return "noeviction";
    }
    (void)p;
    snprintf(out, sizeof(out), "%s", buf);
    return out;
}

/* long: one format string holding the section's 50 fields in Redis 7.0's
 * order; split, the order would be harder to check against Redis. */
static void info_memory(struct sb *b) {
    size_t used = kv_used_memory();
    if (used > server.stat_peak_memory) {
        server.stat_peak_memory = used;
    }
    size_t rss = rss_bytes();
    size_t resident = kv_allocator_resident();
    size_t clients_mem = 0;
    for (struct client *c = server.clients; c; c = c->next) {
        clients_mem += sizeof(*c) + c->qcap + resp_out_pending(&c->out);
    }
    size_t overhead = used_memory_startup + clients_mem;
    size_t dataset = used > overhead ? used - overhead : 0;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    unsigned long long total = pages > 0 && psize > 0 ? (unsigned long long)pages * (unsigned long long)psize : 0;
    char h_used[32], h_rss[32], h_peak[32], h_total[32], h_max[32];
    kv_bytes_human(h_used, sizeof(h_used), used);
    kv_bytes_human(h_rss, sizeof(h_rss), rss);
    kv_bytes_human(h_peak, sizeof(h_peak), server.stat_peak_memory);
    kv_bytes_human(h_total, sizeof(h_total), total);
    kv_bytes_human(h_max, sizeof(h_max), (unsigned long long)server.maxmemory);
    double frag = used ? (double)rss / (double)used : 0;
    sb_printf(b,
              "# Memory\r\n"
              "used_memory:%zu\r\n"
              "used_memory_human:%s\r\n"
              "used_memory_rss:%zu\r\n"
              "used_memory_rss_human:%s\r\n"
              "used_memory_peak:%zu\r\n"
              "used_memory_peak_human:%s\r\n"
              "used_memory_peak_perc:%.2f%%\r\n"
              "used_memory_overhead:%zu\r\n"
              "used_memory_startup:%zu\r\n"
              "used_memory_dataset:%zu\r\n"
              "used_memory_dataset_perc:%.2f%%\r\n"
              "allocator_allocated:%zu\r\n"
              "allocator_active:%zu\r\n"
              "allocator_resident:%zu\r\n"
              "total_system_memory:%llu\r\n"
              "total_system_memory_human:%s\r\n"
              "used_memory_lua:0\r\n"
              "used_memory_vm_eval:0\r\n"
              "used_memory_lua_human:0B\r\n"
              "used_memory_scripts_eval:0\r\n"
              "number_of_cached_scripts:0\r\n"
              "number_of_functions:0\r\n"
              "number_of_libraries:0\r\n"
              "used_memory_vm_functions:0\r\n"
              "used_memory_vm_total:0\r\n"
              "used_memory_vm_total_human:0B\r\n"
              "used_memory_functions:0\r\n"
              "used_memory_scripts:0\r\n"
              "used_memory_scripts_human:0B\r\n"
              "maxmemory:%lld\r\n"
              "maxmemory_human:%s\r\n"
              "maxmemory_policy:%s\r\n"
              "allocator_frag_ratio:%.2f\r\n"
              "allocator_frag_bytes:0\r\n"
              "allocator_rss_ratio:%.2f\r\n"
              "allocator_rss_bytes:%lld\r\n"
              "rss_overhead_ratio:1.00\r\n"
              "rss_overhead_bytes:0\r\n"
              "mem_fragmentation_ratio:%.2f\r\n"
              "mem_fragmentation_bytes:%lld\r\n"
              "mem_not_counted_for_evict:0\r\n"
              "mem_replication_backlog:0\r\n"
              "mem_total_replication_buffers:0\r\n"
              "mem_clients_slaves:0\r\n"
              "mem_clients_normal:%zu\r\n"
              "mem_cluster_links:0\r\n"
              "mem_aof_buffer:0\r\n"
              "mem_allocator:%s\r\n"
              "active_defrag_running:0\r\n"
              "lazyfree_pending_objects:%zu\r\n"
              "lazyfreed_objects:0\r\n",
              used, h_used, rss, h_rss, server.stat_peak_memory, h_peak,
              server.stat_peak_memory ? 100.0 * (double)used / (double)server.stat_peak_memory : 0,
              overhead, used_memory_startup, dataset,
              used ? 100.0 * (double)dataset / (double)used : 0, used, resident ? resident : used,
              resident ? resident : rss, total, h_total, server.maxmemory, h_max,
              policy_name(server.maxmemory_policy), 1.0,
              used && resident ? (double)resident / (double)used : 1.0,
              (long long)resident - (long long)used, frag, (long long)rss - (long long)used,
              clients_mem, kv_allocator_name(), ks_lazyfree_pending());
}

/* Mode persistent's Persistence section: the engine's state under Redis's
 * field names (PERSIST.md says what each means here). */
static void info_persistence_engine(struct sb *b) {
    struct persist_info pi;
    persist_info(&pi);
    sb_printf(b,
              "# Persistence\r\n"
              "loading:%d\r\n"
              "async_loading:0\r\n"
              "current_cow_peak:0\r\n"
              "current_cow_size:0\r\n"
              "current_cow_size_age:0\r\n"
              "current_fork_perc:0.00\r\n"
              "current_save_keys_processed:0\r\n"
              "current_save_keys_total:0\r\n",
              pi.loading);
    if (pi.loading) {
        sb_printf(b,
                  "loading_start_time:%lld\r\n"
                  "loading_total_bytes:0\r\n"
                  "loading_rdb_used_mem:0\r\n"
                  "loading_loaded_bytes:0\r\n"
                  "loading_loaded_perc:0.00\r\n"
                  "loading_eta_seconds:1\r\n",
                  pi.loading_start_ms / 1000);
    }
    sb_printf(b,
              "rdb_changes_since_last_save:%lld\r\n"
              "rdb_bgsave_in_progress:%d\r\n"
              "rdb_last_save_time:%lld\r\n"
              "rdb_last_bgsave_status:ok\r\n"
              "rdb_last_bgsave_time_sec:-1\r\n"
              "rdb_current_bgsave_time_sec:-1\r\n"
              "rdb_saves:0\r\n"
              "rdb_last_cow_size:0\r\n"
              "rdb_last_load_keys_expired:0\r\n"
              "rdb_last_load_keys_loaded:0\r\n"
              "aof_enabled:1\r\n"
              "aof_rewrite_in_progress:%d\r\n"
              "aof_rewrite_scheduled:0\r\n"
              "aof_last_rewrite_time_sec:-1\r\n"
              "aof_current_rewrite_time_sec:-1\r\n"
              "aof_last_bgrewrite_status:%s\r\n"
              "aof_rewrites:0\r\n"
              "aof_rewrites_consecutive_failures:0\r\n"
              "aof_last_write_status:%s\r\n"
              "aof_last_cow_size:0\r\n"
              "module_fork_in_progress:0\r\n"
              "module_fork_last_cow_size:0\r\n"
              "aof_fsync:%s\r\n"
              "aof_wal_syncs:%lld\r\n"
              "aof_delayed_replies:%lld\r\n",
              pi.changes_since_save, pi.bgsave_in_progress, pi.last_save_time,
              pi.bgrewrite_in_progress, pi.last_bgrewrite_ok ? "ok" : "err",
              pi.last_write_ok ? "ok" : "err",
              server.appendfsync == 0 ? "always" : server.appendfsync == 1 ? "everysec" : "no",
              pi.wal_syncs, pi.held_clients);
}

/* INFO persistence: the engine's state in mode persistent; in mode cache nothing
 * is saved and the fields are Redis's with nothing to report. */
static void info_persistence(struct sb *b) {
    if (persist_on()) {
        info_persistence_engine(b);
        return;
    }
    sb_printf(b,
              "# Persistence\r\n"
              "loading:0\r\n"
              "async_loading:0\r\n"
              "current_cow_peak:0\r\n"
              "current_cow_size:0\r\n"
              "current_cow_size_age:0\r\n"
              "current_fork_perc:0.00\r\n"
              "current_save_keys_processed:0\r\n"
              "current_save_keys_total:0\r\n"
              "rdb_changes_since_last_save:%lld\r\n"
              "rdb_bgsave_in_progress:0\r\n"
              "rdb_last_save_time:%lld\r\n"
              "rdb_last_bgsave_status:ok\r\n"
              "rdb_last_bgsave_time_sec:-1\r\n"
              "rdb_current_bgsave_time_sec:-1\r\n"
              "rdb_saves:0\r\n"
              "rdb_last_cow_size:0\r\n"
              "rdb_last_load_keys_expired:0\r\n"
              "rdb_last_load_keys_loaded:0\r\n"
              "aof_enabled:0\r\n"
              "aof_rewrite_in_progress:0\r\n"
              "aof_rewrite_scheduled:0\r\n"
              "aof_last_rewrite_time_sec:-1\r\n"
              "aof_current_rewrite_time_sec:-1\r\n"
              "aof_last_bgrewrite_status:ok\r\n"
              "aof_rewrites:0\r\n"
              "aof_rewrites_consecutive_failures:0\r\n"
              "aof_last_write_status:ok\r\n"
              "aof_last_cow_size:0\r\n"
              "module_fork_in_progress:0\r\n"
              "module_fork_last_cow_size:0\r\n",
              server.dirty, server.lastsave);
}

static void info_stats(struct sb *b) {
    sb_printf(b,
              "# Stats\r\n"
              "total_connections_received:%lld\r\n"
              "total_commands_processed:%lld\r\n"
              "instantaneous_ops_per_sec:%lld\r\n"
              "total_net_input_bytes:%lld\r\n"
              "total_net_output_bytes:%lld\r\n"
              "total_net_repl_input_bytes:0\r\n"
              "total_net_repl_output_bytes:0\r\n"
              "instantaneous_input_kbps:%.2f\r\n"
              "instantaneous_output_kbps:%.2f\r\n"
              "instantaneous_input_repl_kbps:0.00\r\n"
              "instantaneous_output_repl_kbps:0.00\r\n"
              "rejected_connections:%lld\r\n"
              "sync_full:0\r\n"
              "sync_partial_ok:0\r\n"
              "sync_partial_err:0\r\n"
              "expired_keys:%lld\r\n"
              "expired_stale_perc:0.00\r\n"
              "expired_time_cap_reached_count:0\r\n"
              "expire_cycle_cpu_milliseconds:0\r\n"
              "evicted_keys:%lld\r\n"
              "evicted_clients:0\r\n"
              "total_eviction_exceeded_time:0\r\n"
              "current_eviction_exceeded_time:0\r\n"
              "keyspace_hits:%lld\r\n"
              "keyspace_misses:%lld\r\n"
              "pubsub_channels:0\r\n"
              "pubsub_patterns:0\r\n"
              "pubsubshard_channels:0\r\n"
              "latest_fork_usec:0\r\n"
              "total_forks:0\r\n"
              "migrate_cached_sockets:0\r\n"
              "slave_expires_tracked_keys:0\r\n"
              "active_defrag_hits:0\r\n"
              "active_defrag_misses:0\r\n"
              "active_defrag_key_hits:0\r\n"
              "active_defrag_key_misses:0\r\n"
              "total_active_defrag_time:0\r\n"
              "current_active_defrag_time:0\r\n"
              "tracking_total_keys:0\r\n"
              "tracking_total_items:0\r\n"
              "tracking_total_prefixes:0\r\n"
              "unexpected_error_replies:%lld\r\n"
              "total_error_replies:%lld\r\n"
              "dump_payload_sanitizations:0\r\n"
              "total_reads_processed:%lld\r\n"
              "total_writes_processed:%lld\r\n"
              "io_threaded_reads_processed:0\r\n"
              "io_threaded_writes_processed:0\r\n"
              "reply_buffer_shrinks:0\r\n"
              "reply_buffer_expands:0\r\n",
              server.stat_numconnections, server.stat_numcommands, metric(METRIC_OPS),
              server.stat_net_input_bytes, server.stat_net_output_bytes,
              (double)metric(METRIC_IN) / 1024, (double)metric(METRIC_OUT) / 1024,
              server.stat_rejected_conn, server.stat_expiredkeys, server.stat_evictedkeys,
              server.stat_keyspace_hits, server.stat_keyspace_misses,
              server.stat_unexpected_error_replies, server.stat_total_error_replies,
              server.stat_total_reads, server.stat_total_writes);
}

static void info_replication(struct sb *b) {
    sb_printf(b,
              "# Replication\r\n"
              "role:master\r\n"
              "connected_slaves:0\r\n"
              "master_failover_state:no-failover\r\n"
              "master_replid:%s\r\n"
              "master_replid2:0000000000000000000000000000000000000000\r\n"
              "master_repl_offset:0\r\n"
              "second_repl_offset:-1\r\n"
              "repl_backlog_active:0\r\n"
              "repl_backlog_size:1048576\r\n"
              "repl_backlog_first_byte_offset:0\r\n"
              "repl_backlog_histlen:0\r\n",
              replid_buf);
}

static void info_cpu(struct sb *b) {
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    struct rusage thread = self;
#ifdef RUSAGE_THREAD
    getrusage(RUSAGE_THREAD, &thread);
#endif
#define TV(t) (long)(t).tv_sec, (long)(t).tv_usec
    sb_printf(b,
              "# CPU\r\n"
              "used_cpu_sys:%ld.%06ld\r\n"
              "used_cpu_user:%ld.%06ld\r\n"
              "used_cpu_sys_children:%ld.%06ld\r\n"
              "used_cpu_user_children:%ld.%06ld\r\n"
              "used_cpu_sys_main_thread:%ld.%06ld\r\n"
              "used_cpu_user_main_thread:%ld.%06ld\r\n",
              TV(self.ru_stime), TV(self.ru_utime), TV(children.ru_stime),
              TV(children.ru_utime), TV(thread.ru_stime), TV(thread.ru_utime));
#undef TV
}

static void info_cmdstat_one(struct sb *b, const struct kv_command *cmd) {
    if (cmd->calls == 0 && cmd->failed_calls == 0 && cmd->rejected_calls == 0) {
        return;
    }
    sb_printf(b, "cmdstat_%s:calls=%lld,usec=%lld,usec_per_call=%.2f,rejected_calls=%lld,"
                 "failed_calls=%lld\r\n",
              cmd->name, cmd->calls, cmd->usec,
              cmd->calls ? (double)cmd->usec / (double)cmd->calls : 0.0, cmd->rejected_calls,
              cmd->failed_calls);
}

static void info_commandstats(struct sb *b) {
    sb_printf(b, "# Commandstats\r\n");
    size_t n;
    struct kv_command *tab = command_table(&n);
    for (size_t i = 0; i < n; i++) {
        size_t ns;
        const struct kv_command *subs = command_subcommands(&tab[i], &ns);
        if (subs) {
            for (size_t k = 0; k < ns; k++) {
                info_cmdstat_one(b, &subs[k]);
            }
        } else {
            info_cmdstat_one(b, &tab[i]);
        }
    }
}

static void info_errorstats(struct sb *b) {
    sb_printf(b, "# Errorstats\r\n");
    const char *code;
    long long count;
    for (int i = 0; errorstat_iter(i, &code, &count); i++) {
        sb_printf(b, "errorstat_%s:count=%lld\r\n", code, count);
    }
}

static void info_keyspace(struct sb *b) {
    sb_printf(b, "# Keyspace\r\n");
    if (server.db == NULL) {
        return;
    }
    for (int i = 0; i < server.databases; i++) {
        size_t keys = persist_on() ? persist_db_size(i) : ks_db_size(server.db[i]);
        if (keys == 0) {
            continue;
        }
        if (persist_on()) {
            sb_printf(b, "db%d:keys=%zu,expires=%zu,avg_ttl=%lld\r\n", i, keys,
                      persist_db_expires(i), ks_db_avg_ttl(server.db[i]));
            continue;
        }
        sb_printf(b, "db%d:keys=%zu,expires=%zu,avg_ttl=%lld\r\n", i, keys,
                  ks_db_expires(server.db[i]), ks_db_avg_ttl(server.db[i]));
    }
}

enum {
    SEC_SERVER = 1 << 0, SEC_CLIENTS = 1 << 1, SEC_MEMORY = 1 << 2, SEC_PERSISTENCE = 1 << 3,
    SEC_STATS = 1 << 4, SEC_REPLICATION = 1 << 5, SEC_CPU = 1 << 6, SEC_MODULES = 1 << 7,
    SEC_ERRORSTATS = 1 << 8, SEC_CLUSTER = 1 << 9, SEC_KEYSPACE = 1 << 10,
    SEC_COMMANDSTATS = 1 << 11, SEC_LATENCYSTATS = 1 << 12, SEC_ENGINE = 1 << 13,
    SEC_KVDCLUSTER = 1 << 14, /* kvd's cluster (cluster-enabled yes only) */
};
#define SEC_DEFAULT (SEC_SERVER | SEC_CLIENTS | SEC_MEMORY | SEC_PERSISTENCE | SEC_STATS | \
                     SEC_REPLICATION | SEC_CPU | SEC_MODULES | SEC_ERRORSTATS | SEC_CLUSTER | \
                     SEC_KEYSPACE | SEC_KVDCLUSTER)
#define SEC_ALL (SEC_DEFAULT | SEC_COMMANDSTATS | SEC_LATENCYSTATS | SEC_ENGINE)

/* KVD CLEANUP's progress (server/store/cleanup.h), in the Kvdcluster section. */
static void info_cleanup(struct sb *b) {
    static const char *const names[] = {"idle", "sweeping", "compacting", "done", "aborted"};
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    sb_printf(b,
              "cleanup_state:%s\r\ncleanup_runs:%llu\r\ncleanup_ranges:%llu\r\n"
              "cleanup_ranges_done:%llu\r\ncleanup_keys_dropped:%llu\r\n"
              "cleanup_bytes_dropped:%llu\r\ncleanup_ms:%lld\r\ncleanup_stopped_why:%s\r\n",
              names[st.state], (unsigned long long)st.runs, (unsigned long long)st.ranges,
              (unsigned long long)st.ranges_done, (unsigned long long)st.keys_dropped,
              (unsigned long long)st.bytes_dropped, st.ms, st.why);
}

static const struct {
    const char *name;
    int bits;
} section_names[] = {
    {"server", SEC_SERVER}, {"clients", SEC_CLIENTS}, {"memory", SEC_MEMORY},
    {"persistence", SEC_PERSISTENCE}, {"stats", SEC_STATS}, {"replication", SEC_REPLICATION},
    {"cpu", SEC_CPU}, {"modules", SEC_MODULES}, {"errorstats", SEC_ERRORSTATS},
    {"cluster", SEC_CLUSTER}, {"keyspace", SEC_KEYSPACE}, {"commandstats", SEC_COMMANDSTATS},
    {"latencystats", SEC_LATENCYSTATS}, {"engine", SEC_ENGINE}, {"kvdcluster", SEC_KVDCLUSTER},
    {"default", SEC_DEFAULT},
    {"all", SEC_ALL},
    {"everything", SEC_ALL},
};

char *info_generate(int nsec, const struct kv_slice *secs, size_t *len) {
    int want = nsec == 0 ? SEC_DEFAULT : 0;
    for (int i = 0; i < nsec; i++) {
        for (size_t k = 0; k < sizeof(section_names) / sizeof(section_names[0]); k++) {
            if (strlen(section_names[k].name) == secs[i].len &&
                strncasecmp(section_names[k].name, secs[i].p, secs[i].len) == 0) {
                want |= section_names[k].bits;
            }
        }
    }
    struct sb b = {kv_malloc(4096), 0, 4096};
    b.p[0] = '\0';
    int n = 0;
#define SECTION(bit, fn)                                                         \
    if (want & (bit)) {                                                          \
        if (n++) sb_printf(&b, "\r\n");                                          \
        fn(&b);                                                                  \
    }
    SECTION(SEC_SERVER, info_server);
    SECTION(SEC_CLIENTS, info_clients);
    SECTION(SEC_MEMORY, info_memory);
    SECTION(SEC_PERSISTENCE, info_persistence);
    SECTION(SEC_STATS, info_stats);
    SECTION(SEC_REPLICATION, info_replication);
    SECTION(SEC_CPU, info_cpu);
    if (want & SEC_MODULES) {
        if (n++) sb_printf(&b, "\r\n");
        sb_printf(&b, "# Modules\r\n");
    }
    SECTION(SEC_COMMANDSTATS, info_commandstats);
    SECTION(SEC_ERRORSTATS, info_errorstats);
    if (want & SEC_LATENCYSTATS) {
        if (n++) sb_printf(&b, "\r\n");
        sb_printf(&b, "# Latencystats\r\n");
    }
    if (want & SEC_CLUSTER) {
        if (n++) sb_printf(&b, "\r\n");
        sb_printf(&b, "# Cluster\r\ncluster_enabled:0\r\n");
    }
    SECTION(SEC_KEYSPACE, info_keyspace);
    if ((want & SEC_KVDCLUSTER) && server.cluster) {
        /* its own name: cluster_enabled stays 0 above (client libraries keep their
         * standalone mode) */
        if (n++) sb_printf(&b, "\r\n");
        struct msg_buf mb = {0};
        cluster_info(server.cluster, &mb);
        sb_printf(&b, "# Kvdcluster\r\n%.*s", (int)mb.len, mb.p ? mb.p : "");
        sb_printf(&b, "field_tombstones_dropped:%llu\r\n",
                  (unsigned long long)store_field_tombstones_dropped());
        info_cleanup(&b);
        msg_buf_free(&mb);
    }
    if ((want & SEC_ENGINE) && persist_on()) {
        if (n++) sb_printf(&b, "\r\n");
        char eb[4096];
        persist_info_engine(eb, sizeof(eb));
        sb_printf(&b, "# Engine\r\n%s", eb);
    }
#undef SECTION
    *len = b.len;
    return b.p;
}

void cmd_info(struct client *c) {
    size_t len;
    char *text = info_generate(c->argc - 1, c->argv + 1, &len);
    reply_verbatim(c, text, len);
    kv_free(text);
}
