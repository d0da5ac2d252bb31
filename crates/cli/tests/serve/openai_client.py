"""The real `openai` Python client against a running `zoo serve` (started by openai_client.rs).

Usage: python openai_client.py BASE_URL API_KEY
Checks completions and chat completions, whole and streamed, seed reproducibility, a stop string
and the error cases; prints one line per check and exits non-zero on the first failure.
"""

import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=600)
model = client.models.list().data[0].id
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=4, temperature=0)
text = completion.choices[0].text
check("completion", "Paris" in text and completion.usage.completion_tokens == 4, completion)

pieces = client.completions.create(
    model=model, prompt="The capital of France is", max_tokens=4, temperature=0, stream=True
)
check("streamed completion", "".join(c.choices[0].text for c in pieces) == text)

chat = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=32, temperature=0)
answer = chat.choices[0].message.content
check("chat", "Paris" in answer and chat.choices[0].finish_reason == "stop", chat)

stream = client.chat.completions.create(
    model=model, messages=QUESTION, max_tokens=32, temperature=0, stream=True,
    stream_options={"include_usage": True},
)
chunks = list(stream)
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("streamed chat", streamed == answer, (streamed, answer))
check("streamed usage", chunks[-1].usage.completion_tokens == chat.usage.completion_tokens, chunks[-1])


def sampled(seed):
    reply = client.chat.completions.create(
        model=model, messages=QUESTION, max_tokens=12, temperature=1.0, seed=seed
    )
    return reply.choices[0].message.content


check("seed reproducibility", sampled(3) == sampled(3))

stopped = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=32, temperature=0, stop=["Paris"])
check(
    "stop string",
    stopped.choices[0].message.content == answer[: answer.index("Paris")]
    and stopped.choices[0].finish_reason == "stop",
    stopped,
)


def refused(name, error, **kwargs):
    try:
        client.chat.completions.create(model=model, messages=QUESTION, max_tokens=4, **kwargs)
    except error as e:
        check(name, isinstance(e.body, dict) and "message" in e.body, e.body)
        return
    sys.exit(f"FAILED {name}: no {error.__name__}")


refused("temperature out of range", openai.BadRequestError, temperature=5)
refused("n > 1", openai.BadRequestError, n=2)
refused("top_p out of range", openai.BadRequestError, top_p=0)
try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 10000}], max_tokens=4)
    sys.exit("FAILED prompt longer than the context: accepted")
except openai.BadRequestError as e:
    check("prompt longer than the context", e.code == "context_length_exceeded", e.body)
wrong = openai.OpenAI(base_url=base + "/v1", api_key=key + "x", max_retries=0)
try:
    wrong.models.list()
    sys.exit("FAILED wrong key: accepted")
except openai.AuthenticationError:
    check("wrong key", True)
print("all checks passed")
