"""Straightforward loop implementations of the official benchmark definitions.

Written from the definitions (one query / sample / prediction at a time, plain Python
arithmetic) to check the vectorised scorers in ``egohod.benchmarks.scorers``. Where the official
code orders tied values with numpy's default argsort, these do the same call on one row, so the
comparison also covers ties.
"""
from __future__ import annotations

import math

import numpy as np


# ---- EK-100 MIR ------------------------------------------------------------------------------

def mir_ap_row(sim_row, rel_row):
    order = np.argsort(-sim_row)
    cum, total, n_rel = 0.0, 0.0, 0
    for k, j in enumerate(order, start=1):
        cum += float(rel_row[j])
        if rel_row[j] == 1:
            total += cum / k
            n_rel += 1
    return total / n_rel if n_rel else math.nan


def mir_ndcg_row(sim_row, rel_row):
    k = sum(1 for r in rel_row if r > 0)
    if k == 0:
        return math.nan
    order = np.argsort(sim_row)[::-1]
    dcg = sum(float(rel_row[order[i]]) / math.log2(i + 2) for i in range(k))
    ideal = sorted((float(r) for r in rel_row), reverse=True)
    idcg = sum(ideal[i] / math.log2(i + 2) for i in range(k))
    return dcg / idcg


def mir_reference(sim, rel):
    v2t = [mir_ap_row(sim[i], rel[i]) for i in range(sim.shape[0])]
    t2v = [mir_ap_row(sim[:, j], rel[:, j]) for j in range(sim.shape[1])]
    nv = [mir_ndcg_row(sim[i], rel[i]) for i in range(sim.shape[0])]
    nt = [mir_ndcg_row(sim[:, j], rel[:, j]) for j in range(sim.shape[1])]
    m = lambda xs: 100 * sum(xs) / len(xs)  # noqa: E731
    out = {"map_v2t": m(v2t), "map_t2v": m(t2v), "ndcg_v2t": m(nv), "ndcg_t2v": m(nt)}
    out["map_avg"] = (out["map_v2t"] + out["map_t2v"]) / 2
    out["ndcg_avg"] = (out["ndcg_v2t"] + out["ndcg_t2v"]) / 2
    return out


# ---- classification --------------------------------------------------------------------------

def classification_reference(scores, labels, over="labels"):
    n, c = scores.shape
    top1 = top5 = 0
    preds = []
    for i in range(n):
        ranked = sorted(range(c), key=lambda j: (-scores[i, j], j))  # ties: lower index first
        top1 += labels[i] in ranked[:1]
        top5 += labels[i] in ranked[:5]
        preds.append(ranked[0])
    classes = set(int(x) for x in labels)
    if over == "labels_and_predictions":
        classes |= set(preds)
    accs = []
    for cls in sorted(classes):
        rows = [i for i in range(n) if labels[i] == cls]
        accs.append(sum(preds[i] == cls for i in rows) / len(rows) if rows else 0.0)
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n, "mean_class_acc": 100 * sum(accs) / len(accs)}


def egomcq_reference(scores, answers, types):
    out = {}
    for name, t in (("inter", 1), ("intra", 2)):
        total = correct = 0
        for i in range(len(answers)):
            if types[i] == t:
                total += 1
                best = max(range(scores.shape[1]), key=lambda j: (scores[i, j], -j))
                correct += best == answers[i]
        out[name] = 100 * correct / total if total else math.nan
    return out


def ek100_action_reference(verb_scores, noun_scores, verb_labels, noun_labels, top_n=100):
    from scipy.special import softmax

    tv = [np.argsort(r)[::-1][:top_n] for r in verb_scores]
    tn = [np.argsort(r)[::-1][:top_n] for r in noun_scores]
    pv = softmax(np.stack([verb_scores[i][tv[i]] for i in range(len(tv))]))
    pn = softmax(np.stack([noun_scores[i][tn[i]] for i in range(len(tn))]))
    res = {}
    for task in ("verb", "noun", "action"):
        res[f"{task}_top1"] = res[f"{task}_top5"] = 0
    n = len(verb_labels)
    for i in range(n):
        prod = (pv[i][:, None] * pn[i][None, :]).reshape(-1)
        best = np.argsort(prod)[::-1][:top_n]
        table = {}
        for flat in best:
            a, b = divmod(int(flat), pn.shape[1])
            table[int(tv[i][a]) * 1000 + int(tn[i][b])] = prod[flat]
        ids = np.array(list(table.keys()))
        action_rank = ids[np.argsort(np.array([table[k] for k in ids]))[::-1]]
        for task, ranking, label in (
            ("verb", np.argsort(verb_scores[i])[::-1], verb_labels[i]),
            ("noun", np.argsort(noun_scores[i])[::-1], noun_labels[i]),
            ("action", action_rank, verb_labels[i] * 1000 + noun_labels[i]),
        ):
            res[f"{task}_top1"] += label in list(ranking[:1])
            res[f"{task}_top5"] += label in list(ranking[:5])
    return {k: 100 * v / n for k, v in res.items()}


# ---- NLQ / MQ --------------------------------------------------------------------------------

def nlq_reference(preds, gts, thresholds=(0.3, 0.5), topk=(1, 5)):
    def iou(p, g):
        inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
        union = max(0.0, max(p[1], g[1]) - min(p[0], g[0]))
        return inter / union
    out = {}
    for k in topk:
        for t in thresholds:
            hits = [any(iou(p, g) > t for p in ps[:k]) for ps, g in zip(preds, gts)]
            out[f"r{k}_iou{t:g}"] = 100 * sum(hits) / len(hits)
    out["miou"] = 100 * sum(iou(ps[0], g) for ps, g in zip(preds, gts)) / len(gts)
    return out


def _voc_ap(prec, rec):
    mprec = [0.0] + list(prec) + [0.0]
    mrec = [0.0] + list(rec) + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def mq_reference(gt, preds, tious=(0.1, 0.2, 0.3, 0.4, 0.5), recall_tiou=0.5):
    def tiou(a, b):
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        return inter / ((b[1] - b[0]) + (a[1] - a[0]) - inter)
    labels = []
    for rows in gt.values():
        for r in rows:
            if r[0] not in labels:
                labels.append(r[0])
    aps = {t: [] for t in tious}
    for label in labels:
        g = [(v, s, e) for v, rows in gt.items() for (lab, s, e) in rows if lab == label]
        p = [(v, s, e, sc) for v, rows in preds.items() for (lab, s, e, sc) in rows if lab == label]
        if not p:
            for t in tious:
                aps[t].append(0.0)
            continue
        order = np.array([x[3] for x in p], dtype=np.float64).argsort()[::-1]
        for t in tious:
            used = set()
            tp, fp = [], []
            for i in order:
                v, s, e, _ = p[i]
                cands = [j for j in range(len(g)) if g[j][0] == v]
                ious = np.array([tiou((s, e), g[j][1:]) for j in cands])
                matched = False
                for jj in ious.argsort()[::-1]:
                    if ious[jj] < t:
                        break
                    if cands[jj] in used:
                        continue
                    used.add(cands[jj])
                    matched = True
                    break
                tp.append(1 if matched else 0)
                fp.append(0 if matched else 1)
            ctp, cfp, prec, rec = 0, 0, [], []
            for a, b in zip(tp, fp):
                ctp += a
                cfp += b
                prec.append(ctp / (ctp + cfp))
                rec.append(ctp / len(g))
            aps[t].append(_voc_ap(prec, rec))
    out = {f"map_tiou{t:g}": 100 * sum(aps[t]) / len(aps[t]) for t in tious}
    out["map_avg"] = sum(out[f"map_tiou{t:g}"] for t in tious) / len(tious)
    found = []
    for v, rows in gt.items():
        for label in dict.fromkeys(r[0] for r in rows):
            segs = [r[1:] for r in rows if r[0] == label]
            cand = [r[1:3] for r in preds.get(v, []) if r[0] == label][:len(segs)]
            for sgt in segs:
                ok = False
                for c in cand:
                    inter = max(0.0, min(c[1], sgt[1]) - max(c[0], sgt[0]))
                    union = max(0.0, max(c[1], sgt[1]) - min(c[0], sgt[0]))
                    ok = ok or inter / union > recall_tiou
                found.append(ok)
    out[f"recall1x_tiou{recall_tiou:g}"] = 100 * sum(found) / len(found)
    return out


# ---- action segmentation ---------------------------------------------------------------------

def _segs(labels, bg):
    out = []
    for i, lab in enumerate(labels):
        if i == 0 or lab != labels[i - 1]:
            out.append([lab, i, i + 1])
        else:
            out[-1][2] = i + 1
    return [s for s in out if s[0] not in bg]


def _lev(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = d[i - 1][j - 1] if a[i - 1] == b[j - 1] else 1 + min(d[i - 1][j], d[i][j - 1], d[i - 1][j - 1])
    return d[-1][-1]


def segmentation_reference(preds, gts, bg=("background",), overlaps=(0.1, 0.25, 0.5)):
    correct = total = 0
    edits = []
    counts = {t: [0, 0, 0] for t in overlaps}
    for p, y in zip(preds, gts):
        correct += sum(p[i] == y[i] for i in range(len(y)))
        total += len(y)
        ps, ys = _segs(p, bg), _segs(y, bg)
        edits.append((1 - _lev([s[0] for s in ps], [s[0] for s in ys]) / max(len(ps), len(ys))) * 100)
        for t in overlaps:
            hit = [False] * len(ys)
            for lab, s, e in ps:
                best, best_j = None, None
                for j, (ylab, ys_, ye) in enumerate(ys):
                    v = (min(e, ye) - max(s, ys_)) / (max(e, ye) - min(s, ys_)) if ylab == lab else 0.0
                    if best is None or v > best:
                        best, best_j = v, j
                if best_j is not None and best >= t and not hit[best_j]:
                    hit[best_j] = True
                    counts[t][0] += 1
                else:
                    counts[t][1] += 1
            counts[t][2] += len(ys) - sum(hit)
    out = {"acc": 100 * correct / total, "edit": sum(edits) / len(edits)}
    for t in overlaps:
        tp, fp, fn = counts[t]
        prec = tp / (tp + fp) if tp + fp else math.nan
        rec = tp / (tp + fn) if tp + fn else math.nan
        f1 = 2 * prec * rec / (prec + rec) if (prec + rec) and not math.isnan(prec + rec) else 0.0
        out[f"f1@{int(round(t * 100))}"] = f1 * 100
    return out
