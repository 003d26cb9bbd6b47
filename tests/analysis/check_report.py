#!/usr/bin/python3
"""Checks an analysis report: the HTML's quantizer table and summary equal the JSON's numbers, in the same order.
usage: check_report.py REPORT_DIR [RENDERED_DOM.html]  (the DOM dumped by headless Chromium, if available)"""
import json, sys
from html.parser import HTMLParser


class Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.cur, self.row, self.cell, self.svgs, self.cards = {}, None, None, None, 0, []
        self.in_card = False
        self.noise, self.in_noise = "", False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.cur = a.get("id", "")
            self.tables[self.cur] = []
        elif tag == "tr" and self.cur is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""
        elif tag == "svg":
            self.svgs += 1
        elif tag == "p" and a.get("id") == "noise":
            self.in_noise = True
        elif tag == "b" and a.get("class") is None:
            self.in_card = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.cur = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.cur].append(self.row)
            self.row = None
        elif tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "b":
            self.in_card = False
        elif tag == "p":
            self.in_noise = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.in_card:
            self.cards.append(data.strip())
        if self.in_noise:
            self.noise += data


def main():
    d = sys.argv[1]
    rep = json.load(open(f"{d}/report.json"))
    for page in [f"{d}/index.html"] + sys.argv[2:3]:
        p = Tables()
        p.feed(open(page).read())
        assert "quantizers" in p.tables, f"{page}: no quantizer table"
        assert p.svgs >= 2, f"{page}: {p.svgs} plots"
        header, rows = p.tables["quantizers"][0], p.tables["quantizers"][1:]
        assert len(rows) == len(rep["quantizers"]), f"{page}: {len(rows)} rows, JSON has {len(rep['quantizers'])}"
        col = {h: i for i, h in enumerate(header)}
        keys = [("alone", "alone"), ("all but this", "all_but"), ("SQNR dB", "sqnr_db"), ("alone drop", "alone_drop"),
                ("gain", "all_but_gain"), ("output SQNR alone dB", "output_sqnr_alone_db"),
                ("output SQNR all but this dB", "output_sqnr_all_but_db")]
        for h, _ in keys[-2:]:
            assert h in col, f"{page}: no '{h}' column"
        for row, q in zip(rows, rep["quantizers"]):
            assert row[col["quantizer"]] == q["label"], (row, q["label"])
            assert int(row[col["bits"]]) == q["bits"]
            for h, k in keys:
                if h in col:
                    assert abs(float(row[col[h]]) - q[k]) < 1e-9, f"{page}: {q['label']} {h}: {row[col[h]]} vs {q[k]}"
        # Most severe first: the output SQNR with the quantizer alone never decreases down the table.
        assert rep["ranking"] == "output_sqnr_alone_db"
        alone = [q["output_sqnr_alone_db"] for q in rep["quantizers"]]
        assert alone == sorted(alone), "quantizers are not sorted by severity"
        if rep["metric"] == "accuracy":
            noise = p.noise.replace("\n", " ")
            assert f"{rep['accuracy_noise_points']:.2f}" in noise, f"{page}: noise line {noise!r}"
        cards = [float(c) for c in p.cards if c.replace('.', '', 1).replace('-', '', 1).isdigit()]
        want = [rep["fp32"], rep["quantized"], rep["weights_only"], rep["activations_only"]]
        assert cards[:4] == want, f"{page}: summary {cards[:4]} vs JSON {want}"
        if "mixed_precision" in rep:
            mixed = p.tables["mixed"][1:]
            assert len(mixed) == len(rep["mixed_precision"]["steps"])
            for row, s in zip(mixed, rep["mixed_precision"]["steps"]):
                assert row[1] == s["raised"] and abs(float(row[3]) - s["metric"]) < 1e-9, (row, s)
    print(f"report ok: {len(rep['quantizers'])} quantizers, {p.svgs} plots")


if __name__ == "__main__":
    main()
