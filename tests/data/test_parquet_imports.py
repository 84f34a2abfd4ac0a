"""Reading the tasks' parquet tables imports neither pyarrow.dataset nor pandas (~0.2 CPU s of every evaluation
process's start-up, and of every rank's)."""
from __future__ import annotations

import subprocess
import sys


def test_reading_a_parquet_table_imports_no_dataset_module_nor_pandas(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"qry_text": ["a", "b"], "tgt_text": [["x"], ["y", "z"]]}), path)
    code = ("import sys\nfrom pathlib import Path\nfrom uniembed.data.readers.common import read_parquet_rows\n"
            f"rows = read_parquet_rows(Path({str(path)!r}), ['qry_text'])\n"
            "print(rows, sorted(m for m in ('pyarrow.dataset', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[{'qry_text': 'a', 'tgt_text': ['x']}, {'qry_text': 'b', 'tgt_text': ['y', 'z']}] []"
