"""The studio: the Gradio front end of finetune/ (app.py builds and launches it).

  page       the layout, then the wiring: which callback each event calls, under which api_name
  callbacks  what each action does: finds the caller's owner, calls finetune/, hands results to view
  view       how results are shown (HTML, Markdown, tables from plain data)
  text       every word in Japanese and English, the CSS and the page's start-up script
  owners     who a request acts for, and which runs, uploads and zips are theirs
  queue      the fair line in front of the one training job
  shared     the objects every visitor shares (work folder, policy, owners, line, models, sweeper)

Only this package imports gradio; finetune/ never does.
"""
