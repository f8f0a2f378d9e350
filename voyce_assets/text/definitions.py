"""The text stage's Definitions: sentiment, enhanced transcriptions, auto-tags, search index."""

from dagster import Definitions

from voyce_assets.text.auto_tags import auto_tags
from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions
from voyce_assets.text.search import feedback_search_index
from voyce_assets.text.sentiment_analysis import sentiment_analysis

defs = Definitions(
    assets=[sentiment_analysis, enhanced_transcriptions, auto_tags, feedback_search_index]
)
