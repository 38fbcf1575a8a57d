from pipeline.cli import program

raise SystemExit(program())
