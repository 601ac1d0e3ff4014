"""egohod encoders and kitchen demos inside other robot-learning stacks.

- :mod:`robot.integrations.robomimic`: ``EgoVideoCore`` (an observation core), the kitchen as a
  robomimic env type, and ``egohod-robomimic-train`` (robomimic's training loop with both).
- :mod:`robot.integrations.lerobot_policy_egohod`: a LeRobot policy plugin package (installed
  into a LeRobot environment, see ``scripts/lerobot_venv.sh``); it does not import egohod's
  training side and is not imported by anything here.
"""
