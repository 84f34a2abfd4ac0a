"""Hard-negative mining (`uniembed mine`): retrieve each training query's top N with a trained model and
keep negatives by rank window, count and score margins; never a positive or a duplicate of one."""
from .run import format_report, merge_shards, mine_shard
from .selection import FILTERS, MiningOptions, Selection, parse_rank_range, select_negatives
from .sources import MiningSource, load_source

__all__ = ["FILTERS", "MiningOptions", "MiningSource", "Selection", "format_report", "load_source", "merge_shards",
           "mine_shard", "parse_rank_range", "select_negatives"]
