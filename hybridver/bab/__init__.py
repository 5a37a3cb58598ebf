"""Branch-and-bound over subdomains, and the search for counterexamples.

The strategies run by the loop of :mod:`hybridver.bab_core`: input splitting
(``input_split``, its domain pool ``input_domains``) and activation splitting
(``activation_split``, with ``branching``, ``neuron_domains`` and ``domain_attack``).
Beside them: the PGD attack (``attack``), an exact back end racing activation splitting
on a whole case (``case_race``), and the hand-off of hard domains to the scheduler
(``handoff``).
"""
