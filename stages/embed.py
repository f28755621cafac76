"""embed: data/embed/<CODE>.npz, an embedding of every spectrogram of the class (the seed's embed.py).

The embedder is config (`embedder=birdnet`, the default, or `embedder=checkpoint
embedder.path=models/search.ckpt`). Embeddings are keyed by spectrogram id and stamped with the
embedder's name, version and dimension; they are written here, never into the class database.
Incremental: spectrograms embedded before by the same embedder are not embedded again.
Only what is used is computed: every class is embedded when some class is curated by the model
(`select.unattended.by=model`, the default, and a class with no search queries that is not kept
whole: the score stage needs them all), or when an embedding head is trained (train.model_name=embed_head
or train.head.enabled); otherwise a class with no
search queries gets an empty store (marked so), unless `search.embed_all=true`; a by-hand search of
such a class embeds it then (data/embed/_manual/).
BirdNET's weights are licensed CC BY-NC-SA 4.0 (non-commercial, share alike).

    python -m stages.embed --code RIWH [embedder.threads=1 ...]
    python -m stages.embed --code RIWH engine=ray engine.address=auto   # embedded on a Ray cluster
"""

from __future__ import annotations

from pathlib import Path

from hawk.embed.run import embed_class, write_unused
from stages._cli import class_stage, curated_by_model, embedder_factory, engine, run, trains_head


def main() -> None:
    cfg, spec = class_stage(__doc__)
    out = Path(cfg.paths.embeddings)
    if not (cfg.search.queries.get(spec.code) or cfg.search.embed_all or curated_by_model(cfg) or trains_head(cfg)):
        write_unused(out / f"{spec.code}.npz", out / f"{spec.code}.report.csv", spec.code, str(cfg.embedder.name))
        print(f"{spec.code}: not embedded (no search queries use it and curation is not by the model; "
              "search.embed_all=true embeds every class)")
        return
    load = embedder_factory(cfg)
    emb = load()
    with engine(cfg) as eng:
        res = embed_class(Path(cfg.paths.db) / f"{spec.code}.db", Path(cfg.paths.recordings) / spec.code, emb,
                          out / f"{spec.code}.npz", out / f"{spec.code}.report.csv", spec.code,
                          show_progress=bool(cfg.embedder.progress), engine=eng, load_embedder=load)
    rate = res.embedded / res.seconds if res.seconds else 0.0
    print(f"{spec.code}: {res.embedded} embedded, {res.reused} reused, {len(res.skipped)} recordings skipped "
          f"in {res.seconds:.1f} s ({rate:.0f} spectrograms/s, {emb.name} {emb.version}, {emb.dim}-d)")


if __name__ == "__main__":
    run(main)
