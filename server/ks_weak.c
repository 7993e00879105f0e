/* server/ks_weak.c: TEMPORARY weak defaults for the keyspace's lifecycle hooks
 * (server/ks.h) so the node links while server/ks*.c is being written. The
 * keyspace's strong definitions replace these at link time; this file is deleted
 * once they exist.
 */
#include "server/server.h"
#include "server/server_int.h"

__attribute__((weak)) void ks_init(void) {
}

__attribute__((weak)) void ks_deinit(void) {
}

__attribute__((weak)) size_t ks_db_size(const struct kv_db *db) {
    (void)db;
    return 0;
}

__attribute__((weak)) size_t ks_db_expires(const struct kv_db *db) {
    (void)db;
    return 0;
}

__attribute__((weak)) long long ks_db_avg_ttl(const struct kv_db *db) {
    (void)db;
    return 0;
}

__attribute__((weak)) void ks_active_expire_cycle(int fast) {
    (void)fast;
}

__attribute__((weak)) void ks_cron(void) {
}
