"""Campaigns: a cell checked over many randomized approaches and faults on the simulated clock.

An approach is a pure function of (seed, index) (`draw`); `kernel` runs it through the real compiled step
with the robot's stopping model; `runner` runs chunks and classifies outcomes; `store` streams chunk
results to a resumable JSON-lines file; `aggregate` and `render` build the report; `engines` spread
chunks over a process pool or a Ray cluster. docs/campaign.md says what a campaign proves.
"""
