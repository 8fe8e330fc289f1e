"""Real-time recommendations: item index, user profiles, batched scoring, offline evaluation.

Items are the documents and catalogue items the enrich role embeds; their vectors travel on
the compacted ``aimass.item-vectors`` topic into every worker's :class:`~.index.ItemIndex`.
User events update :class:`~.profiles.Profile` values in a Faust table, and each batch of
events is scored with one matrix multiply per tenant (:class:`~.scoring.Scorer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_aimass.recs.index import ItemIndex
from stream_aimass.recs.profiles import ProfileConfig
from stream_aimass.recs.scoring import ScoringConfig

if TYPE_CHECKING:
    from stream_aimass.settings import Settings


def profile_config(settings: Settings) -> ProfileConfig:
    return ProfileConfig(
        weights=dict(settings.recs_event_weights),
        half_life_s=settings.recs_profile_half_life_s,
        recent_items=settings.recs_recent_items,
    )


def scoring_config(settings: Settings) -> ScoringConfig:
    return ScoringConfig(
        k=settings.recs_k,
        weight_popularity=settings.recs_weight_popularity,
        weight_recency=settings.recs_weight_recency,
        recency_half_life_s=settings.recs_recency_half_life_s,
    )


def item_index(settings: Settings) -> ItemIndex:
    return ItemIndex(
        max_items_per_tenant=settings.recs_max_items_per_tenant,
        popularity_half_life_s=settings.recs_popularity_half_life_s,
        tenants=settings.recs_tenants,
    )
