/* Adan's update for float32 tensors on the CPU: one call updates every tensor of a parameter group.
 *
 * Built on first use by hf_ada/optim/_native.py (the C compiler of the machine, -O3 -march=native; the loop
 * below vectorizes) and loaded with ctypes; no Python or torch headers, so it builds quickly.
 * Each element is read once from each of the six arrays (param, grad, exp_avg, exp_avg_diff, exp_avg_sq,
 * prev_grad) and written once to five of them, in place: the memory traffic floor of the algorithm.
 *
 * The element ranges of all tensors are split evenly over `threads` POSIX threads (the caller passes
 * torch.get_num_threads(); small calls stay on the calling thread). No OpenMP: torch ships its own
 * runtime, and a second one in the process would fight it for the cores.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#define MAX_THREADS 256
#define MIN_ELEMENTS_PER_THREAD (1 << 16)        /* the update: a thread's start costs about this much work */
#define MIN_ELEMENTS_PER_CHECK_THREAD (1 << 20)  /* the read-only scan runs ~5x faster per element */
#define ALIGN_ELEMENTS 16 /* one 64-byte cache line of float32: threads never share a line */

/* scalars: beta1, beta2, beta3, step_size, step_size_diff, inv_bc3_sqrt, eps, pre_decay, inv_post_decay,
 * clip, 1 - beta1, 1 - beta2, 1 - beta3 (the order of hf_ada.optim._native.SCALARS) */
enum { N_SCALARS = 13 };

static void update_run(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                       float *restrict n, float *restrict q, int64_t len, const float *s) {
    const float beta1 = s[0], beta2 = s[1], beta3 = s[2], step_size = s[3], step_size_diff = s[4];
    const float inv_bc3_sqrt = s[5], eps = s[6], pre_decay = s[7], inv_post_decay = s[8], clip = s[9];
    const float one_minus_beta1 = s[10], one_minus_beta2 = s[11], one_minus_beta3 = s[12];
    for (int64_t i = 0; i < len; i++) {
        const float grad = g[i] * clip;
        const float diff = grad - q[i];
        const float exp_avg = m[i] * beta1 + grad * one_minus_beta1;
        const float exp_avg_diff = v[i] * beta2 + diff * one_minus_beta2;
        const float nesterov = diff * beta2 + grad;
        const float exp_avg_sq = n[i] * beta3 + nesterov * nesterov * one_minus_beta3;
        const float denom = sqrtf(exp_avg_sq) * inv_bc3_sqrt + eps;
        p[i] = (p[i] * pre_decay - (step_size * exp_avg + step_size_diff * exp_avg_diff) / denom) * inv_post_decay;
        m[i] = exp_avg;
        v[i] = exp_avg_diff;
        n[i] = exp_avg_sq;
        q[i] = grad;
    }
}

#define FINITE_STREAMS 8 /* one core reads a single stream well below its bandwidth; 8 at once come close */

static int finite_run(const float *restrict g, int64_t len) {
    const uint32_t *bits = (const uint32_t *)g;
    const int64_t part = (len / FINITE_STREAMS) & ~(int64_t)(ALIGN_ELEMENTS - 1);
    const int64_t block = 1024;
    for (int64_t start = 0; start < part; start += block) { /* FINITE_STREAMS parts read side by side */
        const int64_t end = start + block < part ? start + block : part;
        uint32_t bad = 0;
        for (int64_t i = start; i < end; i++)
            for (int s = 0; s < FINITE_STREAMS; s++) bad |= (bits[s * part + i] & 0x7f800000u) == 0x7f800000u;
        if (bad) return 0;
    }
    uint32_t bad = 0;
    for (int64_t i = FINITE_STREAMS * part; i < len; i++) bad |= (bits[i] & 0x7f800000u) == 0x7f800000u;
    return !bad;
}

typedef struct {
    int64_t count;
    void *const *ptrs; /* count params, count grads, count exp_avg, count exp_avg_diff, count exp_avg_sq, count prev */
    const int64_t *numel;
    const float *scalars;
    int64_t begin, end; /* this worker's range of the concatenated elements */
    int finite;         /* finite_worker's answer */
    volatile int *stop; /* a non-finite value was found: the other finite_workers may stop */
} job_t;

/* Call fn(tensor index, offset within the tensor, length) for each piece of [begin, end). */
#define FOR_EACH_PIECE(job, body)                                                       \
    do {                                                                                \
        int64_t base = 0;                                                               \
        for (int64_t t = 0; t < (job)->count && base < (job)->end; t++) {               \
            const int64_t len_t = (job)->numel[t];                                      \
            const int64_t lo = (job)->begin > base ? (job)->begin - base : 0;           \
            const int64_t hi = (job)->end - base < len_t ? (job)->end - base : len_t;   \
            if (hi > lo) {                                                              \
                const int64_t offset = lo, length = hi - lo;                            \
                body;                                                                   \
            }                                                                           \
            base += len_t;                                                              \
        }                                                                               \
    } while (0)

static void *update_worker(void *arg) {
    job_t *job = (job_t *)arg;
    const int64_t c = job->count;
    void *const *P = job->ptrs;
    FOR_EACH_PIECE(job, update_run((float *)P[t] + offset, (const float *)P[c + t] + offset,
                                   (float *)P[2 * c + t] + offset, (float *)P[3 * c + t] + offset,
                                   (float *)P[4 * c + t] + offset, (float *)P[5 * c + t] + offset, length,
                                   job->scalars));
    return 0;
}

static void *finite_worker(void *arg) {
    job_t *job = (job_t *)arg;
    job->finite = 1;
    FOR_EACH_PIECE(job, {
        if (*job->stop) return 0;
        if (!finite_run((const float *)job->ptrs[t] + offset, length)) {
            job->finite = 0;
            *job->stop = 1;
            return 0;
        }
    });
    return 0;
}

/* Split the elements over up to `threads` workers, run `work` on each (the calling thread takes the first),
 * join. Returns the number of workers used, or -1 if a thread could not be started (nothing ran then). */
static int run_split(void *(*work)(void *), int64_t count, void *const *ptrs, const int64_t *numel,
                     const float *scalars, int threads, int64_t min_per_thread, job_t *jobs, volatile int *stop) {
    int64_t total = 0;
    for (int64_t t = 0; t < count; t++) total += numel[t];
    int64_t workers = total / min_per_thread;
    if (workers > threads) workers = threads;
    if (workers > MAX_THREADS) workers = MAX_THREADS;
    if (workers < 1) workers = 1;
    int64_t per = (total + workers - 1) / workers;
    per = (per + ALIGN_ELEMENTS - 1) / ALIGN_ELEMENTS * ALIGN_ELEMENTS;
    for (int64_t w = 0; w < workers; w++) {
        jobs[w] = (job_t){count, ptrs, numel, scalars, w * per, (w + 1) * per < total ? (w + 1) * per : total, 1, stop};
    }
    pthread_t handles[MAX_THREADS];
    int64_t started = 0;
    for (int64_t w = 1; w < workers; w++) {
        if (pthread_create(&handles[w], 0, work, &jobs[w]) != 0) break;
        started = w;
    }
    if (started < workers - 1) { /* could not start them all: run the missing ranges here, nothing lost */
        for (int64_t w = started + 1; w < workers; w++) work(&jobs[w]);
    }
    work(&jobs[0]);
    for (int64_t w = 1; w <= started; w++) pthread_join(handles[w], 0);
    return (int)workers;
}

/* Adan's update of `count` float32 tensors, in place. Returns the number of threads used. */
int hf_ada_adan_update(int64_t count, void *const *ptrs, const int64_t *numel, const float *scalars, int threads) {
    job_t jobs[MAX_THREADS];
    volatile int stop = 0;
    return run_split(update_worker, count, ptrs, numel, scalars, threads, MIN_ELEMENTS_PER_THREAD, jobs, &stop);
}

/* 1 if none of the `count` float32 tensors (ptrs[0..count)) holds an inf or a nan, else 0. */
int hf_ada_all_finite(int64_t count, void *const *ptrs, const int64_t *numel, int threads) {
    job_t jobs[MAX_THREADS];
    volatile int stop = 0;
    const int workers = run_split(finite_worker, count, ptrs, numel, 0, threads, MIN_ELEMENTS_PER_CHECK_THREAD, jobs, &stop);
    for (int w = 0; w < workers; w++)
        if (!jobs[w].finite) return 0;
    return 1;
}

/* Add 1 to each of `count` float32 scalars (the parameters' step counts); the new counts go to `out`. */
void hf_ada_add_one(int64_t count, float *const *steps, float *out) {
    for (int64_t t = 0; t < count; t++) out[t] = (*steps[t] += 1.0f);
}

int hf_ada_scalar_count(void) { return N_SCALARS; }
