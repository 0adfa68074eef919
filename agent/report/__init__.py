"""`stage-agent report RECORDING`: a static HTML page with pictures of a run, from its log alone.

data.py turns (header, records) into what the page shows (pure); figures.py draws it with
matplotlib (file-only backend); page.py writes the HTML text (pure); build.py reads the log,
draws, writes the folder. compare.py (`stage-agent compare`) re-improvises a recording with other
settings and puts both runs' figures and piano rolls on one page.
"""
