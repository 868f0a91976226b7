"""Stands for LightOn's ``examples/api-docs/randomized_svd.ipynb``: its imports
(``MixingBitPlanDecoder`` included), the ``movielens20m`` loader (processed matrix and
movie names), an ``OPUMap`` used without ``fit`` on thresholded ratings, and the randomized
SVD built on its projections."""

import numpy as np
import pytest


@pytest.fixture
def movielens(data_dir):
    folder = data_dir / "movielens-20m"
    folder.mkdir()
    rng = np.random.default_rng(0)
    users, movies, rank = 400, 120, 5
    ratings = rng.normal(0, 1, (users, rank)) @ rng.normal(0, 1, (rank, movies))
    ratings = np.clip(np.round(ratings + 3), 1, 5).astype(np.float64)
    ratings[rng.random(ratings.shape) < 0.3] = np.nan
    np.save(folder / "ratings_mat.npy", ratings)
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f"{i},Movie {i},Drama\n" for i in range(1, 121)))
    return ratings


def test_imports_of_the_first_cell(lightonml):
    from lightonml.datasets import movielens20m  # noqa: F401
    from lightonml.encoding.base import MixingBitPlanDecoder, SeparatedBitPlanEncoder
    from lightonml.opu import OPU
    from lightonml.projections.sklearn import OPUMap  # noqa: F401

    assert OPU is lightonml.OPU
    assert MixingBitPlanDecoder(n_bits=3).transform(np.ones((6, 2))).shape == (2, 2)
    assert SeparatedBitPlanEncoder().transform(np.array([[0.5, -1.0]])).shape == (12, 2)


def test_movielens_and_a_randomized_svd_from_an_unfitted_opumap(lightonml, movielens):
    from lightonml.datasets import movielens20m
    from lightonml.projections.sklearn import OPUMap

    ratings, id_to_movie = movielens20m(processed=True, id_to_movie=True)
    assert ratings.shape == (400, 120) and id_to_movie[0] == ["movieId", "title", "genres"]
    ratings = ratings.astype("float32")
    ratings -= np.nanmean(ratings, axis=0, keepdims=True)
    ratings[np.isnan(ratings)] = 0
    with pytest.warns(UserWarning, match="not fitted"):
        projection = OPUMap(n_components=60).transform((ratings > 0).astype("uint8"))
    assert type(projection) is np.ndarray and projection.shape == (400, 60)
    # range finder: the projection's column space, refined once by the data
    Q, _ = np.linalg.qr(ratings @ (ratings.T @ projection.astype(np.float64)))
    U, s, Vt = np.linalg.svd(Q.T @ ratings, full_matrices=False)
    reconstruction = Q @ U[:, :20] @ np.diag(s[:20]) @ Vt[:20]
    exact = np.linalg.svd(ratings, compute_uv=False)
    best = np.sqrt((exact[20:] ** 2).sum())  # the truncated SVD's error
    assert np.linalg.norm(reconstruction - ratings) < 1.2 * best


def test_movielens_without_files_says_where_they_go(lightonml, data_dir):
    from lightonml.datasets import DatasetNotFoundError, movielens20m

    with pytest.raises(DatasetNotFoundError, match="ratings_mat.npy"):
        movielens20m(processed=True)
