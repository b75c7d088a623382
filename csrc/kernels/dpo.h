/* dpo.h: the DPO objective (Rafailov et al. 2023; the paper's DPO baseline,
 * method.md "Baselines"): preference pairs (chosen, rejected) against a frozen
 * reference, loss and d loss / d logp of both sides in one call. The per-token
 * work (sequence sums and their backward) is ppo.h's; this adds the per-pair
 * part, all in double. A mask entry is valid when its byte is nonzero; masked
 * entries of the float inputs are never used (NaN allowed there). */
#ifndef O1P_DPO_H
#define O1P_DPO_H

#include "o1p.h"

typedef struct {
    double beta;          /* > 0: the KL weight, the inverse temperature of the margin */
    int length_normalize; /* 1: mean of the valid token log-probs instead of their sum */
} dpo_config;

typedef struct {
    double loss; /* sum_b w_b * -log sigmoid(z_b) / B over the non-padding pairs */
    /* statistics over the non-padding pairs (`count` of them; unweighted);
     * all 0 when count is 0. Implicit rewards: beta * (pi - ref). */
    double margin_mean;          /* mean of z_b = chosen reward - rejected reward */
    double accuracy;             /* share of pairs with z_b > 0 */
    double chosen_reward_mean;   /* mean of beta * (pi_c - ref_c) */
    double rejected_reward_mean; /* mean of beta * (pi_r - ref_r) */
    int64_t count;
    /* on O1P_EVALUE: which input (0 chosen, 1 rejected) and either a flat index
     * into it of a non-finite valid entry (bad_index >= 0) or the pair whose
     * side `bad_which` has no valid token while the other side has some
     * (bad_row >= 0; the other field is -1). */
    o1p_int bad_index, bad_row;
    int bad_which;
} dpo_result;

/* DPO loss and gradients.
 *   chosen[B,Tc], chosen_mask[B,Tc], rejected[B,Tr], rejected_mask[B,Tr]:
 *     policy token log-probs of the two responses of each pair;
 *   ref_chosen[B], ref_rejected[B]: the reference's sequence log-probs (sums,
 *     or means with length_normalize), finite;
 *   weights[B] or NULL (all 1): finite, >= 0 (checked by the caller).
 *   z_b = beta * ((pi_c - ref_c) - (pi_r - ref_r)), l_b = -log sigmoid(z_b).
 * -> grad_chosen[B,Tc], grad_rejected[B,Tr] (overwritten; 0 where masked), *res.
 * A pair whose two rows are both fully masked is padding: loss and gradient 0,
 * left out of the statistics, still counted in B. Exactly one empty row, or a
 * valid entry that is NaN or +-inf, or a pair whose rewards or margin overflow
 * float64 (bad_which 2, bad_row): O1P_EVALUE (res->bad_*), outputs then
 * unspecified. O1P_ENOMEM when scratch memory cannot be had. */
int dpo_loss_forward_backward(const dpo_config *cfg, o1p_int B, o1p_int Tc, o1p_int Tr, const float *chosen,
                              const uint8_t *chosen_mask, const float *rejected, const uint8_t *rejected_mask,
                              const double *ref_chosen, const double *ref_rejected, const double *weights,
                              float *grad_chosen, float *grad_rejected, dpo_result *res);

#endif /* O1P_DPO_H */
