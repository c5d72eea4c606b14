"""Natural-language instructions for the MT10 Meta-World tasks.

``INSTRUCTIONS[task]`` holds paraphrases of one task's goal, varied in syntax (imperatives,
questions, polite requests, statements of intent) and wording, so a language-conditioned
prior sees more than one phrasing per task. The first entry of each tuple is the canonical
one. The texts are host-side strings; environments expose them through ``env.instructions``
and pick one per episode by index (``state.info["instruction_id"]``).
"""

from __future__ import annotations

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "reach-v3": (
        "Reach the goal position with the gripper.",
        "Move the gripper to the target location.",
        "Bring the end effector to the goal point.",
        "Can you move your hand to the goal?",
        "Please reach toward the target position.",
        "Put the robot's gripper at the marked goal.",
        "Could you guide the arm so its hand touches the target spot?",
        "Extend the arm until the gripper reaches the goal.",
        "Your task is to get the hand to the target point in the air.",
        "Go to the goal location with the robot hand.",
        "Would you position the gripper exactly at the goal, please?",
        "Move the arm to the target.",
    ),
    "push-v3": (
        "Push the puck to the goal.",
        "Slide the puck across the table to the target.",
        "Can you push the puck to the goal position?",
        "Please nudge the puck over to the target location.",
        "Move the puck to the goal by pushing it along the table.",
        "Shove the small cylinder until it sits on the goal.",
        "Could you slide the puck onto the target spot?",
        "Your job is to push the puck into the goal region.",
        "Get the puck to the target without lifting it.",
        "Push the round block toward the goal marker.",
        "Would you move the puck to the goal, please?",
        "Drive the puck over the table to the target point.",
    ),
    "pick-place-v3": (
        "Pick up the puck and place it at the goal.",
        "Grasp the puck, lift it, and put it down at the target.",
        "Can you pick the puck up and move it to the goal position?",
        "Please lift the puck and carry it to the target location.",
        "Grab the puck and set it at the goal.",
        "Could you take the puck and place it on the target spot?",
        "Lift the small cylinder off the table and bring it to the goal.",
        "Your task is to pick up the puck and deliver it to the target.",
        "Hold the puck in the gripper and move it to the goal point.",
        "Would you pick up the puck and drop it off at the goal, please?",
        "Carry the puck through the air to the target position.",
        "Pick and place the puck at the goal.",
    ),
    "door-open-v3": (
        "Open the door.",
        "Pull the door open by its handle.",
        "Can you open the door?",
        "Please swing the door open.",
        "Grab the door handle and pull until the door is open.",
        "Could you open up the cabinet door?",
        "Your task is to pull the door open.",
        "Rotate the door on its hinge to open it.",
        "Would you open the door for me, please?",
        "Get the door open.",
        "Swing the door outward using the handle.",
        "Make the door open wide.",
    ),
    "drawer-open-v3": (
        "Open the drawer.",
        "Pull the drawer out.",
        "Can you open the drawer?",
        "Please slide the drawer open.",
        "Grab the drawer handle and pull it toward you.",
        "Could you pull out the drawer?",
        "Your task is to open the drawer by its handle.",
        "Slide the drawer outward until it is open.",
        "Would you open that drawer, please?",
        "Get the drawer open.",
        "Draw the drawer out of the cabinet.",
        "Pull on the handle so the drawer opens.",
    ),
    "drawer-close-v3": (
        "Close the drawer.",
        "Push the drawer shut.",
        "Can you close the drawer?",
        "Please slide the drawer closed.",
        "Push the drawer back into the cabinet.",
        "Could you shut the open drawer?",
        "Your task is to close the drawer.",
        "Slide the drawer inward until it is closed.",
        "Would you push that drawer closed, please?",
        "Get the drawer closed.",
        "Press on the drawer front to close it.",
        "Shove the drawer all the way in.",
    ),
    "button-press-topdown-v3": (
        "Press the button from the top.",
        "Push the button down from above.",
        "Can you press the button straight down?",
        "Please press down on the button from above.",
        "Move over the button and push it down.",
        "Could you push the button in from the top?",
        "Your task is to press the button downward.",
        "Lower the gripper onto the button and press it.",
        "Would you push down the button, please?",
        "Press the top-facing button.",
        "Hit the button with a downward push.",
        "Depress the button by pushing it from overhead.",
    ),
    "peg-insert-side-v3": (
        "Insert the peg into the hole from the side.",
        "Pick up the peg and push it sideways into the hole.",
        "Can you insert the peg into the side hole?",
        "Please grasp the peg and slide it into the hole.",
        "Grab the peg and put it into the hole in the box.",
        "Could you fit the peg into the hole on the side?",
        "Your task is to insert the peg horizontally into the hole.",
        "Lift the peg, line it up with the hole, and push it in.",
        "Would you place the peg into the hole, please?",
        "Stick the peg into the side opening.",
        "Get the peg inserted into the hole.",
        "Slot the peg into the hole from the side.",
    ),
    "window-open-v3": (
        "Open the window.",
        "Slide the window open.",
        "Can you open the window?",
        "Please push the window open.",
        "Slide the window pane sideways to open it.",
        "Could you slide the window to open it?",
        "Your task is to open the sliding window.",
        "Push the window handle until the window is open.",
        "Would you open the window, please?",
        "Get the window open.",
        "Move the sliding window to its open position.",
        "Open up the window by sliding it.",
    ),
    "window-close-v3": (
        "Close the window.",
        "Slide the window shut.",
        "Can you close the window?",
        "Please push the window closed.",
        "Slide the window pane sideways to close it.",
        "Could you slide the window to close it?",
        "Your task is to close the sliding window.",
        "Push the window handle until the window is closed.",
        "Would you shut the window, please?",
        "Get the window closed.",
        "Move the sliding window to its closed position.",
        "Close up the window by sliding it.",
    ),
}
"""Task name (Meta-World v3 spelling) -> paraphrased instructions (canonical first)."""


def instructions_for(task_name: str) -> tuple[str, ...]:
    """The instructions of ``task_name``; ValueError naming the valid tasks otherwise."""
    try:
        return INSTRUCTIONS[task_name]
    except KeyError:
        raise ValueError(
            f"No instructions for Meta-World task {task_name!r}; valid tasks: {sorted(INSTRUCTIONS)}"
        ) from None


PARAPHRASE_SPLITS = ("train", "rephrase")
"""The language protocol's splits on Meta-World: the tasks are the same, the phrasings differ."""


def paraphrase_split(seed: int, num_heldout: int = 4) -> dict[str, tuple[int, ...]]:
    """Which paraphrase indices are ``train`` and which ``rephrase`` (held out), chosen by
    ``seed``; the same indices for every task (each has 12). The canonical phrasing (index 0)
    always trains."""
    n = min(len(v) for v in INSTRUCTIONS.values())
    if not 1 <= num_heldout < n:
        raise ValueError(f"num_heldout must be in [1, {n - 1}], got {num_heldout}")
    import numpy as np  # host-side only

    held = sorted(int(i) for i in 1 + np.random.default_rng(int(seed)).permutation(n - 1)[:num_heldout])
    return {"train": tuple(i for i in range(n) if i not in held), "rephrase": tuple(held)}
