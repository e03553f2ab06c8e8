"""The database handles the store uses: FiftyOne's MongoDB connection, its
GridFS, and object ids."""


def db():
    from fiftyone.core.odm import get_db_conn

    return get_db_conn()


def fs():
    import gridfs

    return gridfs.GridFS(db())


def oid(value):
    from bson import ObjectId

    return value if isinstance(value, ObjectId) else ObjectId(value)


def new_oid():
    from bson import ObjectId

    return ObjectId()


def samples_coll(dataset):
    return db()[dataset._sample_collection_name]
