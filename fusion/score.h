/* score.h - the one home of gaze's score rules: how the numbers the towers and the ITM head
 * give become the scores results are ranked by.
 *
 *   gz_score_rerank(itm_logit[1], itc)         LAVIS' re-rank score (BLIP)
 *   gz_score_clip_logit(exp(logit_scale), itc) CLIP's logit
 *   gz_score_calibrate / gz_score_standardise   a modality's cosines made comparable
 *   gz_score_product(w, z_text, z_image)       the products mix of standardised cosines
 *   gz_rank_by_score(matches, n, order)        order by score (declared in gaze.h)
 *
 * Every caller (model/, engine/, eval/) uses these, so a change of rule is made here once. */
#ifndef GZ_FUSION_SCORE_H
#define GZ_FUSION_SCORE_H

/* LAVIS' re-rank score of an (image, text) pair: the ITM head's match logit (itm_logit[1])
** plus the ITC cosine (lavis/models/blip_models/blip_retrieval.py compute_sim_matrix:
** score_matrix = itm_output[:, 1] + topk_sim). */
float gz_score_rerank(float itm_match_logit, float itc);

/* CLIP-family logit of a pair: exp(logit_scale) * itc. logit_scale_exp is the already
** exponentiated temperature (gz_model_logit_scale). */
float gz_score_clip_logit(float logit_scale_exp, float itc);

/* The spread of one modality's cosines over a candidate set (the products mix): text-text
** cosines run higher than text-image ones (CLIP's "modality gap"), so raw cosines of the two
** are not comparable; standardised ones are. */
typedef struct {
    double mean; /* of the finite values */
    double std;  /* population standard deviation; 0 with fewer than two values or no spread */
} gz_score_calib;

/* Mean and standard deviation of the finite values among x[0..n) (NaN skipped). */
gz_score_calib gz_score_calibrate(const float *x, int n);

/* The standard score (x - mean) / std of x. 0 when x is NaN (no value: the average) or when
** std is below 1e-6 (no spread: the modality cannot tell the candidates apart). */
float gz_score_standardise(gz_score_calib c, float x);

/* Products score of a text item linked to an image, from standardised cosines:
**   text_weight * z_text + (1 - text_weight) * z_image.
** A product without an image vector has z_image = 0 (gz_score_standardise of NaN): it counts
** as an average image, so it neither wins nor loses by having none. */
float gz_score_product(float text_weight, float text_z, float image_z);

#endif
