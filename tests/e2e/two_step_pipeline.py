"""A two-step ZenML pipeline: one step produces an artifact, one consumes it.

Run by the end-to-end test with the stock zenml client, connected to a
tenant through ZENML_STORE_URL and ZENML_STORE_API_KEY.
"""

from zenml import pipeline, step


@step
def produce_number() -> int:
    return 41


@step
def add_one(number: int) -> int:
    return number + 1


@pipeline
def two_step_pipeline() -> None:
    add_one(produce_number())


if __name__ == "__main__":
    run = two_step_pipeline()
    print(f"RUN_ID={run.id}")
