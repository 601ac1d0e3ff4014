"""Franka Kitchen simulation and rendering throughput; prints one JSON record.

    python bench/kitchen_render.py                       # all cameras, 224 px
    python bench/kitchen_render.py --cameras left --steps 200 --out bench_kitchen.json

Measured in one process, one environment at a time:
- ``step``: control steps per second without rendering (``camera=None``);
- ``ours/<camera>``: step + render at ``--image-size`` with the envs renderer (buffer at the
  render size, no multisampling, no shadows/reflections, coarser primitives, lighter arm
  meshes), and render alone; ``ours_full_meshes``: the same with the original arm meshes;
- ``shipped``: gymnasium-robotics ``FrankaKitchen-v1`` with ``render_mode="rgb_array"`` at the
  same size and its default settings (2560x1920 buffer, 8x MSAA, 4096 px shadows), a handful of
  frames only because it is slow on CPU renderers.

Each rate is reported against wall time and against this process's CPU time (``cpu_*``): on a
shared machine the CPU-time rate is what one dedicated core would deliver. Set LP_NUM_THREADS=1
to keep Mesa's llvmpipe on a single thread (``--threads 1`` does that before GL starts).
"""
from __future__ import annotations

import argparse
import os
import time

from egohod.measure import emit, machine


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="microwave", help="kitchen task (envs.list_envs())")
    p.add_argument("--cameras", nargs="+", default=["default", "left", "right"])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=100, help="timed control steps per measurement")
    p.add_argument("--shipped-frames", type=int, default=3,
                   help="timed step+render frames of the shipped renderer (0 skips it)")
    p.add_argument("--threads", type=int, default=None,
                   help="LP_NUM_THREADS for Mesa llvmpipe (default: leave as is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    return p.parse_args(argv)


class Timer:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def rates(n: int, timer: Timer) -> dict:
    return {"n": n, "per_s": round(n / timer.wall, 2), "cpu_per_s": round(n / max(timer.cpu, 1e-9), 2),
            "wall_s": round(timer.wall, 3), "cpu_s": round(timer.cpu, 3)}


def actions(n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n, 9))


def run_steps(env, acts) -> None:
    """Step through ``acts``, resetting at episode ends (reset time is included)."""
    for a in acts:
        *_, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()


def bench_step_only(task: str, steps: int, seed: int) -> dict:
    import envs

    env = envs.make(f"kitchen/{task}", camera=None, seed=seed)
    env.reset()
    acts = actions(steps, seed)
    run_steps(env, acts[:5])  # warm-up
    with Timer() as t:
        run_steps(env, acts)
    env.close()
    return rates(steps, t)


def bench_ours(task: str, camera: str, size: int, steps: int, seed: int, **env_kwargs) -> dict:
    import envs
    from envs.cameras import get_camera

    env = envs.make(f"kitchen/{task}", camera=camera, image_size=size, seed=seed, **env_kwargs)
    obs, _ = env.reset()
    acts = actions(steps, seed)
    run_steps(env, acts[:3])  # warm-up (first frame compiles shaders / uploads textures)
    with Timer() as t_step:
        run_steps(env, acts)
    renderer, spec = env._ensure_renderer(), get_camera(camera)
    with Timer() as t_render:
        for _ in range(steps):
            frame = renderer.render(env.data, spec)
    result = {"step_render": rates(steps, t_step), "render_only": rates(steps, t_render),
              "frame_mean": round(float(frame.mean()), 2), "render_size": env.render_size}
    env.close()
    return result


def bench_shipped(size: int, frames: int, seed: int) -> dict:
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make("FrankaKitchen-v1", tasks_to_complete=["microwave"], render_mode="rgb_array",
                   width=size, height=size, disable_env_checker=True)
    env.reset(seed=seed)
    model = env.unwrapped.model
    settings = {"offwidth": int(model.vis.global_.offwidth),
                "offheight": int(model.vis.global_.offheight),
                "offsamples": int(model.vis.quality.offsamples),
                "shadowsize": int(model.vis.quality.shadowsize)}
    acts = actions(frames + 1, seed)
    env.step(acts[0])
    env.render()  # warm-up: creates the GL context
    with Timer() as t:
        for a in acts[1:]:
            env.step(a)
            frame = env.render()
    env.close()
    return {"step_render": rates(frames, t), "frame_mean": round(float(frame.mean()), 2),
            "settings": settings}


def gl_renderer_string() -> str:
    try:
        from OpenGL import GL

        import envs.gl

        ctx = envs.gl.check_gl_context(8, 8)
        name = GL.glGetString(GL.GL_RENDERER)
        ctx.free()
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # reported, not fatal: the numbers stand without it
        return f"unknown ({type(exc).__name__}: {exc})"


def machine_info() -> dict:
    import gymnasium_robotics
    import mujoco

    return machine(extra={"mujoco": mujoco.__version__, "gymnasium_robotics": gymnasium_robotics.__version__,
                          "MUJOCO_GL": os.environ.get("MUJOCO_GL"), "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS"),
                          "gl_renderer": gl_renderer_string()})


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        os.environ["LP_NUM_THREADS"] = str(args.threads)
    import envs  # noqa: F401
    from envs.gl import ensure_gl_backend

    ensure_gl_backend()
    record = {"benchmark": "kitchen_render", "task": args.task, "image_size": args.image_size,
              "steps": args.steps, "machine": machine_info()}
    record["step"] = bench_step_only(args.task, args.steps, args.seed)
    record["ours"] = {cam: bench_ours(args.task, cam, args.image_size, args.steps, args.seed)
                      for cam in args.cameras}
    # the same renderer with the original arm meshes (mesh_detail=1.0), first camera only
    record["ours_full_meshes"] = {args.cameras[0]: bench_ours(
        args.task, args.cameras[0], args.image_size, args.steps, args.seed, mesh_detail=1.0)}
    if args.shipped_frames > 0:
        record["shipped"] = bench_shipped(args.image_size, args.shipped_frames, args.seed)
        ours = [v["step_render"]["cpu_per_s"] for v in record["ours"].values()]
        record["speedup_cpu"] = round(min(ours) / record["shipped"]["step_render"]["cpu_per_s"], 1)
    record["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
