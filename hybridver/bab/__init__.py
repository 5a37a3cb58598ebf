"""Branch-and-bound over subdomains, and the search for counterexamples.

Input splitting (``input_split``), activation splitting (``activation_split``), the PGD
attack (``attack``), an exact back end racing activation splitting on a whole case
(``case_race``), and the hand-off of hard domains to the scheduler (``handoff``).
"""
