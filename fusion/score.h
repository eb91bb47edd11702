/* score.h - the one home of gaze's score rules: how the numbers the towers and the ITM head
 * give become the scores results are ranked by.
 *
 *   gz_score_rerank(itm_logit[1], itc)         LAVIS' re-rank score (BLIP)
 *   gz_score_clip_logit(exp(logit_scale), itc) CLIP's logit
 *   gz_score_product(w, cos_text, cos_image)   the products mix
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

/* Products score of a text item linked to an image:
**   text_weight * cos(q, text) + (1 - text_weight) * cos(q, image).
** A product without an image vector (image_cos is NaN: no link, or the linked image has no
** embedding) scores its text cosine alone. */
float gz_score_product(float text_weight, float text_cos, float image_cos);

#endif
