/* cluster/phi.c: the phi accrual failure detector. See phi.h. */
#include "cluster/phi.h"

#include <math.h>
#include <string.h>

void phi_config_default(struct phi_config *c) {
    c->window = PHI_WINDOW_MAX;
    c->initial_ms = 1000;
    c->min_std_ms = 400;
    c->max_interval_ms = 10000;
}

void phi_init(struct phi *p, const struct phi_config *c) {
    struct phi_config d;
    phi_config_default(&d);
    memset(p, 0, sizeof *p);
    p->c = *c;
    if (p->c.window == 0 || p->c.window > PHI_WINDOW_MAX) {
        p->c.window = d.window;
    }
    if (!(p->c.initial_ms > 0)) {
        p->c.initial_ms = d.initial_ms;
    }
    if (!(p->c.min_std_ms > 0)) {
        p->c.min_std_ms = d.min_std_ms;
    }
    if (!(p->c.max_interval_ms > 0)) {
        p->c.max_interval_ms = d.max_interval_ms;
    }
}

static void add_sample(struct phi *p, uint32_t ms) {
    if (p->n == p->c.window) { /* full: the slot at head is the oldest */
        uint64_t old = p->iv[p->head];
        p->sum -= old;
        p->sumsq -= old * old;
        p->n--;
    }
    p->iv[p->head] = ms;
    p->head = (p->head + 1) % p->c.window;
    p->n++;
    p->sum += ms;
    p->sumsq += (uint64_t)ms * ms;
}

void phi_heartbeat(struct phi *p, uint64_t now) {
    if (p->last != 0 && now > p->last) {
        uint64_t iv = now - p->last;
        if ((double)iv <= p->c.max_interval_ms) {
            add_sample(p, (uint32_t)iv);
        }
    }
    if (now > p->last) {
        p->last = now;
    }
}

void phi_stats(const struct phi *p, double *mean, double *std) {
    double m, s;
    if (p->n == 0) {
        m = p->c.initial_ms;
        s = p->c.initial_ms / 4;
    } else {
        m = (double)p->sum / (double)p->n;
        double var = (double)p->sumsq / (double)p->n - m * m;
        s = var > 0 ? sqrt(var) : 0;
    }
    *mean = m;
    *std = s < p->c.min_std_ms ? p->c.min_std_ms : s;
}

double phi_value(const struct phi *p, uint64_t now) {
    if (p->last == 0 || now <= p->last) {
        return 0;
    }
    double mean, std;
    phi_stats(p, &mean, &std);
    double y = ((double)(now - p->last) - mean) / std;
    /* P(an interval longer than the silence so far) under N(mean, std) */
    double later = 0.5 * erfc(y / sqrt(2.0));
    if (later <= 1e-100) {
        return PHI_MAX;
    }
    double phi = -log10(later);
    return phi < 0 ? 0 : phi;
}
